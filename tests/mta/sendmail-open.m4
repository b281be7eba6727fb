dnl # open: relays for anyone, to anywhere.
FEATURE(`promiscuous_relay')dnl
