//! The `callback_url` form field, the same on every path that takes one
//! (register, recognize, embed, verify, batches): an absolute http(s) URL, and
//! not a literal address that is not public. A host name is judged by the
//! worker on the address it resolves to, when it connects.

use std::net::IpAddr;

use facerec_core::may_deliver_to;
use url::{Host, Url};

use crate::{ApiError, ErrorCode};

/// Longest `callback_url` accepted, in bytes.
const MAX_LEN: usize = 2048;

/// Parses a `callback_url` field; `allow_private` lets loopback and private
/// addresses through (`FACEREC_WEBHOOK_ALLOW_PRIVATE`; see [`may_deliver_to`]).
pub(crate) fn callback_url_field(raw: Option<&str>, allow_private: bool) -> Result<Option<String>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    let bad = || ApiError::new(ErrorCode::InvalidCallbackUrl, "callback_url must be an absolute http(s) URL");
    let url = Url::parse(raw).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() || raw.len() > MAX_LEN {
        return Err(bad());
    }
    if let Some(ip) = literal_address(&url)
        && !may_deliver_to(ip, allow_private)
    {
        return Err(ApiError::new(ErrorCode::InvalidCallbackUrl, "callback_url must name a public address"));
    }
    Ok(Some(url.into()))
}

/// The host when it is an address, as the URL parser reads it (`0x7f.1`,
/// `2130706433` and `[::127.0.0.1]` are all addresses).
fn literal_address(url: &Url) -> Option<IpAddr> {
    match url.host()? {
        Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        Host::Domain(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(raw: &str, allow_private: bool) -> Option<&'static str> {
        callback_url_field(Some(raw), allow_private).err().map(|e| e.code.as_str())
    }

    #[test]
    fn literal_addresses_that_are_not_public_are_refused() {
        for raw in [
            "http://[::127.0.0.1]/x",
            "http://[64:ff9b::7f00:1]/",
            "http://[fec0::1]/",
            "http://240.0.0.1/",
            "http://198.18.0.1/",
            "https://169.254.169.254/latest/meta-data",
            "http://100.64.0.1/",
        ] {
            assert_eq!(code(raw, true), Some("invalid_callback_url"), "{raw}");
            assert_eq!(code(raw, false), Some("invalid_callback_url"), "{raw}");
        }
    }

    #[test]
    fn loopback_and_private_only_where_allowed_and_names_are_left_to_the_worker() {
        // Loopback and private ranges however they are spelled.
        for raw in [
            "http://127.0.0.1:9/hook",
            "http://[::1]:9/",
            "http://0x7f.1/",
            "http://2130706433/",
            "http://10.0.0.1:8080/hook",
            "http://0xa.1/",
            "http://167772161/",
            "http://[::ffff:192.168.0.1]/",
            "http://[fd00::1]/",
        ] {
            assert_eq!(code(raw, false), Some("invalid_callback_url"), "{raw}");
            assert_eq!(code(raw, true), None, "{raw}");
        }
        for raw in
            ["https://hooks.example.com/x", "http://localhost:9/", "http://93.184.216.34/", "http://[2606:4700::1111]/"]
        {
            assert_eq!(code(raw, false), None, "{raw}");
        }
        assert_eq!(callback_url_field(None, false).unwrap(), None);
    }
}
