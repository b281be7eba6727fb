dnl # localfrom: closed plus FEATURE(relay_local_from): relays for anyone whose envelope sender
dnl # is in a local domain ($=w), a classic misconfiguration (the sender is forgeable).
FEATURE(`relay_local_from')dnl
