//! Pieces every compile and link key is built from: the arguments in order, and the env
//! vars the tool reads.

use std::collections::BTreeMap;

/// Adds `args` to `hasher`, each after a separator, order kept (`-O0 -O2` ≠ `-O2 -O0`).
pub(super) fn add_args(hasher: &mut blake3::Hasher, args: &[String]) {
    for arg in args {
        hasher.update(&[0]);
        hasher.update(arg.as_bytes());
    }
}

/// The env vars of `env` that `keyed` accepts, sorted by name, as one text (unset and
/// empty differ).
pub(super) fn env_text(env: &[(String, String)], keyed: impl Fn(&str) -> bool) -> String {
    let kept: BTreeMap<&str, &str> = env
        .iter()
        .filter(|(k, _)| keyed(k))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    format!("{kept:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_presence_count() {
        let digest = |args: &[&str]| {
            let mut hasher = blake3::Hasher::new();
            add_args(
                &mut hasher,
                &args.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            );
            hasher.finalize()
        };
        assert_ne!(digest(&["-O0", "-O2"]), digest(&["-O2", "-O0"]));
        assert_ne!(digest(&["-DA", "B"]), digest(&["-DAB"]));
        let env = |pairs: &[(&str, &str)]| {
            let env: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            env_text(&env, |k| k.starts_with("CPATH"))
        };
        assert_eq!(
            env(&[("CPATH", "a"), ("HOME", "x")]),
            env(&[("HOME", "y"), ("CPATH", "a")])
        );
        assert_ne!(env(&[("CPATH", "")]), env(&[]));
    }
}
