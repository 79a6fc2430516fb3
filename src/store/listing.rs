//! Listing rules shared by every engine: where a page starts, and how keys
//! roll up into common prefixes. A page reads only the rows it returns: a
//! common prefix is skipped with one seek past every key that shares it, so
//! a page costs the same on a bucket of a million keys as on one of ten.

use std::ops::Bound;

use super::model::ListQuery;

/// The smallest string greater than every string that starts with `s`, or
/// `None` when no such string exists.
pub fn prefix_successor(s: &str) -> Option<String> {
    let mut chars: Vec<char> = s.chars().collect();
    while let Some(c) = chars.pop() {
        let next = match c as u32 + 1 {
            0xD800 => Some('\u{E000}'),
            n => char::from_u32(n),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// If `key` under `prefix` contains the delimiter, the common prefix it rolls
/// up into.
pub fn common_prefix<'k>(key: &'k str, prefix: &str, delimiter: Option<&str>) -> Option<&'k str> {
    let delimiter = delimiter.filter(|d| !d.is_empty())?;
    let rest = key.get(prefix.len()..)?;
    rest.find(delimiter)
        .map(|i| &key[..prefix.len() + i + delimiter.len()])
}

/// Where a listing resumes: after a key, or past every key of a common
/// prefix that a previous page returned.
pub fn start_bound(q: &ListQuery) -> Bound<String> {
    match &q.after {
        Some(after) if after.as_str() >= q.prefix.as_str() => {
            match common_prefix(after, &q.prefix, q.delimiter.as_deref()) {
                Some(cp) if cp.len() == after.len() => match prefix_successor(cp) {
                    Some(next) => Bound::Included(next),
                    None => Bound::Excluded(after.clone()),
                },
                _ => Bound::Excluded(after.clone()),
            }
        }
        _ => Bound::Included(q.prefix.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successor_bounds_every_extension() {
        assert_eq!(prefix_successor("a/").as_deref(), Some("a0"));
        assert_eq!(prefix_successor("").as_deref(), None);
        assert_eq!(prefix_successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_successor("\u{D7FF}").as_deref(), Some("\u{E000}"));
        let s = prefix_successor("photos/").unwrap();
        assert!("photos/zzz\u{10FFFF}" < s.as_str());
        assert!("photos0" <= s.as_str());
    }

    #[test]
    fn common_prefix_rolls_up_at_the_first_delimiter_after_the_prefix() {
        assert_eq!(common_prefix("a/b/c", "", Some("/")), Some("a/"));
        assert_eq!(common_prefix("a/b/c", "a/", Some("/")), Some("a/b/"));
        assert_eq!(common_prefix("a/b", "a/", Some("/")), None);
        assert_eq!(common_prefix("a/b", "", None), None);
        assert_eq!(common_prefix("a/b", "", Some("")), None);
    }

    #[test]
    fn resuming_after_a_common_prefix_skips_its_keys() {
        let q = ListQuery {
            prefix: String::new(),
            delimiter: Some("/".into()),
            after: Some("a/".into()),
            max: 10,
        };
        assert_eq!(start_bound(&q), Bound::Included("a0".to_owned()));
        let q = ListQuery {
            after: Some("a/b".into()),
            ..q
        };
        assert_eq!(start_bound(&q), Bound::Excluded("a/b".to_owned()));
    }
}
