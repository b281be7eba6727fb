dnl # closed: Debian's defaults. Relaying only for clients the access db lists as RELAY
dnl # (sendmail.sh writes Debian's default access file with 127.0.0.1 instead of all of 127/8);
dnl # unknown local users get "550 5.1.1 ... User unknown" at RCPT.
