//! TLS helpers shared by the http and tcp kinds: a rustls client config that records the full
//! peer chain and reports verification separately, and certificate expiry parsing.
