//! Listing, for every engine: where a page starts, how keys roll up into
//! common prefixes, and the page loops over the engine's ordered scans. A
//! page reads only the rows it returns: a common prefix is skipped with one
//! seek past every key that shares it, so a page costs the same on a bucket
//! of a million keys as on one of ten.

use std::ops::Bound;

use super::buckets::existing;
use crate::store::model::*;
use crate::store::txn::{Checked, Query, Reads, Scan};

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

/// ListObjects (V1 and V2): a page of keys and common prefixes.
pub struct ListObjects {
    pub bucket: String,
    pub q: ListQuery,
}

impl Query for ListObjects {
    type Output = ListPage;

    async fn run<R: Reads>(&self, txn: &mut R) -> Checked<ListPage> {
        let (bucket, q) = (self.bucket.as_str(), &self.q);
        existing(txn, bucket).await?;
        let below = prefix_successor(&q.prefix);
        let mut page = ListPage::default();
        let mut from = start_bound(q);
        let mut count = 0;
        // Each scan reads at most what the page still needs (plus one, to
        // know whether more follow); a common prefix ends the scan and the
        // next starts past it.
        'seek: loop {
            let want = q.max - count + 1;
            let scan = Scan {
                from: as_ref(&from),
                below: below.as_deref(),
                max: want,
            };
            let rows = txn.heads(bucket, scan).await?;
            let fetched = rows.len();
            for (key, head) in rows {
                if count == q.max {
                    page.truncated = true;
                    break 'seek;
                }
                count += 1;
                if let Some(cp) = common_prefix(&key, &q.prefix, q.delimiter.as_deref()) {
                    page.common_prefixes.push(cp.to_owned());
                    page.last = Some(cp.to_owned());
                    match prefix_successor(cp) {
                        Some(next) => {
                            from = Bound::Included(next);
                            continue 'seek;
                        }
                        None => break 'seek,
                    }
                }
                page.last = Some(key.clone());
                page.objects.push((key.clone(), head));
                from = Bound::Excluded(key);
            }
            if fetched < want {
                break;
            }
        }
        Ok(page)
    }
}

fn as_ref(b: &Bound<String>) -> Bound<&str> {
    match b {
        Bound::Included(k) => Bound::Included(k.as_str()),
        Bound::Excluded(k) => Bound::Excluded(k.as_str()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// ListMultipartUploads: by key, then initiation time. `after` is
/// (key-marker, upload-id-marker); without a key marker the id marker is
/// ignored, as on S3.
pub struct ListUploads {
    pub bucket: String,
    pub q: ListQuery,
    pub upload_id_marker: Option<String>,
}

impl Query for ListUploads {
    type Output = UploadListPage;

    async fn run<R: Reads>(&self, txn: &mut R) -> Checked<UploadListPage> {
        let (bucket, q) = (self.bucket.as_str(), &self.q);
        existing(txn, bucket).await?;
        let below = prefix_successor(&q.prefix);
        let mut page = UploadListPage::default();
        let mut from: Bound<(String, String)> = match (&q.after, self.upload_id_marker.as_deref()) {
            (Some(key), Some(id)) if !id.is_empty() && key.as_str() >= q.prefix.as_str() => {
                Bound::Excluded((key.clone(), id.to_owned()))
            }
            _ => match start_bound(q) {
                Bound::Included(k) => Bound::Included((k, String::new())),
                // Past every upload of the marker key.
                Bound::Excluded(k) => Bound::Included((format!("{k}\0"), String::new())),
                Bound::Unbounded => Bound::Unbounded,
            },
        };
        let mut count = 0;
        'seek: loop {
            let want = q.max - count + 1;
            let lower = match &from {
                Bound::Included((k, id)) => Bound::Included((k.as_str(), id.as_str())),
                Bound::Excluded((k, id)) => Bound::Excluded((k.as_str(), id.as_str())),
                Bound::Unbounded => Bound::Unbounded,
            };
            let scan = Scan {
                from: lower,
                below: below.as_deref(),
                max: want,
            };
            let rows = txn.uploads(bucket, scan).await?;
            let fetched = rows.len();
            for (key, id, upload) in rows {
                if count == q.max {
                    page.truncated = true;
                    break 'seek;
                }
                count += 1;
                if let Some(cp) = common_prefix(&key, &q.prefix, q.delimiter.as_deref()) {
                    page.common_prefixes.push(cp.to_owned());
                    match prefix_successor(cp) {
                        Some(next) => {
                            from = Bound::Included((next, String::new()));
                            continue 'seek;
                        }
                        None => break 'seek,
                    }
                }
                page.uploads.push((key.clone(), id.clone(), upload));
                from = Bound::Excluded((key, id));
            }
            if fetched < want {
                break;
            }
        }
        Ok(page)
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
