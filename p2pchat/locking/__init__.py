"""A profile locked with a passphrase: the sealed key file (sealed.py), where a
passphrase comes from (passphrase.py), and turning a profile's lock on, changing it or
taking it off in place, crash-safe (relock.py). docs/architecture.md, "A locked
profile"."""
