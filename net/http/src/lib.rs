//! `fata-http`: the pure HTTP/1.1 logic of a static-file web server, with no I/O.
//!
//! This crate turns received bytes into responses and nothing else: it holds no global state,
//! owns no socket and never blocks, so all of it is tested on the host. A connection loop in
//! the application reads into a buffer and calls [`serve`] (or [`parse_request`], then
//! [`respond_static`] / [`error_response`] and [`Response::write_head`]) until the buffer is
//! used up or the response says to close.
//!
//! - [`request`]: parsing and checking a request head (untrusted bytes end here).
//! - [`site`]: the table of embedded files and the safe path → file mapping.
//! - [`response`]: the static-file policy (200/304/404/405, `HEAD`) and response heads.
//! - [`timer`]: the idle timeout between requests and the deadline of a whole request.
//! - [`mime`] and [`etag`]: content types and ETags; both depend on `core` only, so a build
//!   script can `#[path]`-include them to compute the same values when it embeds a site.
//!
//! Nothing that arrives from the network can make this crate panic; a fuzz-style test feeds it
//! thousands of random, mutated and truncated requests to hold it to that.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod client;
pub mod etag;
pub mod mime;
pub mod request;
pub mod response;
pub mod site;
pub mod timer;

#[cfg(test)]
mod fuzz;

pub use etag::{ETag, etag_for, fnv1a64};
pub use mime::content_type_for;
pub use request::{Limits, Method, ParseError, Request, parse_request};
pub use response::{
    Response, Served, error_response, https_location, if_none_match_matches, reason_phrase,
    respond_static, serve, timeout_response, write_redirect,
};
pub use site::{File, Site, percent_decode};
pub use timer::{Limit, RequestTimer};
