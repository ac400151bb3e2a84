//! The artifact store's settings: its size bound (`ZCCACHE_MAX_SIZE`) and how its blobs are
//! compressed (`ZCCACHE_COMPRESSION`, else `[store] compression` of the user's config).

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

/// The compression environment variable.
pub const COMPRESSION_ENV: &str = "ZCCACHE_COMPRESSION";
/// zstd's level 1: the fastest, and most of the gain on objects and rlibs.
pub const DEFAULT_LEVEL: i32 = 1;

/// The zstd level blobs are stored at (`None`: stored raw), from `ZCCACHE_COMPRESSION`, else
/// the user config's `[store] compression`, else level 1. A value that is not `off` or a
/// level 1..=19 is logged and the default is used.
pub fn compression() -> Option<i32> {
    let setting = match std::env::var(COMPRESSION_ENV)
        .ok()
        .filter(|v| !v.is_empty())
    {
        Some(text) => Ok(Some(text)),
        None => super::user_config::store_compression(),
    };
    let parsed = setting.and_then(|text| text.map(|t| parse_level(&t)).transpose());
    match parsed {
        Ok(Some(level)) => level,
        Ok(None) => Some(DEFAULT_LEVEL),
        Err(why) => {
            tracing::warn!("{why}; storing at zstd level {DEFAULT_LEVEL}");
            Some(DEFAULT_LEVEL)
        }
    }
}

/// `off` (or `0`) → `None`; `1`..=`19` → that level.
pub fn parse_level(text: &str) -> Result<Option<i32>, String> {
    match text.trim() {
        "off" | "0" => Ok(None),
        level => match level.parse::<i32>() {
            Ok(n @ 1..=19) => Ok(Some(n)),
            _ => Err(format!(
                "compression {text:?} is neither \"off\" nor a zstd level 1..19"
            )),
        },
    }
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
    use super::{parse_level, parse_size};

    #[test]
    fn levels_parse() {
        assert_eq!(parse_level("off"), Ok(None));
        assert_eq!(parse_level("0"), Ok(None));
        assert_eq!(parse_level("1"), Ok(Some(1)));
        assert_eq!(parse_level(" 19 "), Ok(Some(19)));
        assert!(parse_level("20").is_err());
        assert!(parse_level("fast").is_err());
    }

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
