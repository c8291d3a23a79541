"""A profile locked with a passphrase: the sealed key file (sealed.py), where a
passphrase comes from (passphrase.py) and opening it with one (unlock.py). Turning
a profile's lock on, changing it or taking it off in place is ``p2pchat.relock``, a
floor above (it moves the store and peers.json too). docs/architecture.md, "A locked
profile"."""
