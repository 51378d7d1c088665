//! Parsers for the values operators write as text. Each returns the reason a
//! value is wrong, phrased to follow `KEY: `.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use http::uri::Authority;
use ipnet::IpNet;

use super::file::SizeFile;

/// `"250ms"`, `"2s"`, `"1m 30s"` (humantime syntax); zero is refused.
pub fn duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("invalid duration \"{text}\": {e} (write e.g. \"500ms\", \"2s\", \"1m\")"))?;
    if d.is_zero() {
        return Err(format!("invalid duration \"{text}\": must be greater than zero"));
    }
    Ok(d)
}

/// A byte count or `"64KiB"`, `"10MB"`, `"1 GiB"`; zero is refused.
pub fn size(value: &SizeFile) -> Result<u64, String> {
    let n = match value {
        SizeFile::Bytes(n) => *n,
        SizeFile::Text(text) => size_text(text)?,
    };
    if n == 0 {
        return Err("invalid size 0: must be greater than zero".into());
    }
    Ok(n)
}

fn size_text(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let bad = |why: &str| format!("invalid size \"{text}\": {why} (write e.g. 65536, \"64KiB\", \"10MB\")");
    let n: u64 = digits.parse().map_err(|_| bad("expected a whole number first"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" | "k" => 1 << 10,
        "mb" => 1_000_000,
        "mib" | "m" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" | "g" => 1 << 30,
        _ => return Err(bad("unknown unit")),
    };
    n.checked_mul(factor).ok_or_else(|| bad("too large"))
}

/// A listening address: an IP and a port (`127.0.0.1:18080`, `[::1]:8080`).
pub fn listen_addr(text: &str) -> Result<SocketAddr, String> {
    let (host, _) = split_host_port(text)?;
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .map_err(|_| format!("invalid listen address \"{text}\": expected an IP address, not \"{host}\""))?;
    text.parse().map_err(|e| format!("invalid listen address \"{text}\": {e}"))
}

/// An upstream address: `host:port`, the host an IP or a DNS name.
pub fn backend_addr(text: &str) -> Result<Authority, String> {
    let (host, _) = split_host_port(text).map_err(|e| e.replace("listen address", "address"))?;
    let bracketed = host.starts_with('[') && host.ends_with(']');
    let valid_host = if bracketed {
        host[1..host.len() - 1].parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    };
    if !valid_host {
        return Err(format!("invalid address \"{text}\": bad host \"{host}\""));
    }
    text.parse::<Authority>().map_err(|e| format!("invalid address \"{text}\": {e}"))
}

/// Splits `host:port`, explaining what is missing or out of range.
fn split_host_port(text: &str) -> Result<(&str, u16), String> {
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!("invalid listen address \"{text}\": expected host:port"));
    };
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid listen address \"{text}\": port \"{port}\" is not a number"));
    }
    let port: u16 =
        port.parse().map_err(|_| format!("invalid listen address \"{text}\": port out of range"))?;
    Ok((host, port))
}

/// `10.0.0.0/8` or a bare IP, meaning just that address.
pub fn trusted_net(text: &str) -> Result<IpNet, String> {
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
        format!("invalid network \"{text}\": expected a CIDR such as 10.0.0.0/8 or an IP address")
    })
}

/// An RFC 9110 token, as `Via` and `Proxy-Status` need.
pub fn token(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if ok {
        Ok(text.to_string())
    } else {
        Err(format!("invalid name \"{text}\": use letters, digits and - . _ only"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_accept_units_and_refuse_nonsense() {
        assert_eq!(size(&SizeFile::Text("64KiB".into())), Ok(65536));
        assert_eq!(size(&SizeFile::Text("10 MB".into())), Ok(10_000_000));
        assert_eq!(size(&SizeFile::Bytes(7)), Ok(7));
        assert!(size(&SizeFile::Text("12 parsecs".into())).unwrap_err().contains("unknown unit"));
        assert!(size(&SizeFile::Bytes(0)).is_err());
    }

    #[test]
    fn backend_port_out_of_range_is_named() {
        let err = backend_addr("10.0.0.1:99999").unwrap_err();
        assert_eq!(err, "invalid address \"10.0.0.1:99999\": port out of range");
        assert!(backend_addr("home.example:443").is_ok());
        assert!(backend_addr("[::1]:80").is_ok());
        assert!(backend_addr("no-port").unwrap_err().contains("expected host:port"));
    }

    #[test]
    fn listen_needs_an_ip() {
        assert!(listen_addr("127.0.0.1:0").is_ok());
        assert!(listen_addr("[::1]:8080").is_ok());
        assert!(listen_addr("localhost:8080").unwrap_err().contains("expected an IP address"));
    }

    #[test]
    fn durations_refuse_zero_and_garbage() {
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(duration("0s").is_err());
        assert!(duration("soon").is_err());
    }
}
