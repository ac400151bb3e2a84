//! `ZCCACHE_MAX_SIZE`: the artifact store's size bound.

/// The environment variable.
pub const MAX_SIZE_ENV: &str = "ZCCACHE_MAX_SIZE";
/// 10 GiB.
pub const DEFAULT_MAX_SIZE: u64 = 10 << 30;

/// The bound from the environment: bytes, or with a K/M/G/T suffix (powers of 1024, an
/// optional `B` or `iB` after it). Unparsable values fall back to the default.
pub fn max_size() -> u64 {
    std::env::var(MAX_SIZE_ENV)
        .ok()
        .and_then(|v| parse_size(&v))
        .unwrap_or(DEFAULT_MAX_SIZE)
}

/// Parses `512`, `64K`, `1.5G`, `10GiB`, `2TB`.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let unit_at = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(unit_at);
    let number: f64 = number.parse().ok()?;
    let unit = unit
        .trim()
        .trim_end_matches(['B', 'b'])
        .trim_end_matches(['i', 'I']);
    let scale: u64 = match unit.to_ascii_uppercase().as_str() {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return None,
    };
    (number >= 0.0).then_some((number * scale as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("64K"), Some(64 << 10));
        assert_eq!(parse_size("1.5G"), Some(3 << 29));
        assert_eq!(parse_size("10GiB"), Some(10 << 30));
        assert_eq!(parse_size("2TB"), Some(2 << 40));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("5X"), None);
    }
}
