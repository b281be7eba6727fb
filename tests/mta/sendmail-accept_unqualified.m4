dnl # accept_unqualified: closed with Sendmail's sender checks relaxed, as often done to stop
dnl # "Domain of sender address ... does not resolve" complaints:
dnl # FEATURE(accept_unqualified_senders) (MAIL FROM:<user> without a domain is accepted) and
dnl # FEATURE(accept_unresolvable_domains) (no DNS check of the sender domain). Still no relay.
FEATURE(`accept_unqualified_senders')dnl
FEATURE(`accept_unresolvable_domains')dnl
