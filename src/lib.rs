//! lienthong: an async prober for the 168 commune-level sites of Ho Chi Minh City.
#![forbid(unsafe_code)]

pub mod probe;
