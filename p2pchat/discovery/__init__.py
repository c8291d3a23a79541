"""Finding peers: mDNS/DNS-SD announcements and browsing (more sources to come)."""
