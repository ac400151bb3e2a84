//! The known name closest to a mistyped one, for "did you mean" hints: the fewest
//! single-character insertions, deletions and substitutions, at most two (and fewer than
//! the word's own length, so a short word is not "close" to everything).

/// The name among `known` closest to `word`, if one is close enough.
pub fn closest<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = 2.min(word.chars().count().saturating_sub(1));
    known
        .into_iter()
        .map(|name| (distance(word, name), name))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, name)| (*d, name.len()))
        .map(|(_, name)| name)
}

/// Levenshtein distance over chars.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substituted = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substituted.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: [&str; 5] = ["run", "status", "stop", "start", "tasks"];

    #[test]
    fn hints_at_near_misses_only() {
        assert_eq!(closest("rn", NAMES), Some("run"));
        assert_eq!(closest("runn", NAMES), Some("run"));
        assert_eq!(closest("staus", NAMES), Some("status"));
        assert_eq!(closest("task", NAMES), Some("tasks"));
        assert_eq!(closest("x", NAMES), None);
        assert_eq!(closest("compile", NAMES), None);
    }

    #[test]
    fn distance_counts_edits() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "ab"), 2);
        assert_eq!(distance("ab", "ab"), 0);
    }
}
