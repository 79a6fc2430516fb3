//! Listing objects and uploads from redb in key order, with the shared
//! rules of [`crate::store::listing`].

use std::ops::Bound;

use redb::ReadableTable;

use super::tables::decode;
use crate::error::S3Result;
use crate::store::listing::{common_prefix, prefix_successor, start_bound};
use crate::store::model::*;

pub fn objects(
    objects: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    bucket: &str,
    q: &ListQuery,
) -> S3Result<ListPage> {
    let mut page = ListPage::default();
    let mut from = start_bound(q);
    let mut count = 0;
    'seek: loop {
        let lower = match &from {
            Bound::Included(k) => Bound::Included((bucket, k.as_str())),
            Bound::Excluded(k) => Bound::Excluded((bucket, k.as_str())),
            Bound::Unbounded => Bound::Included((bucket, "")),
        };
        for row in objects.range::<(&str, &str)>((lower, Bound::Unbounded))? {
            let (k, v) = row?;
            let (b, key) = k.value();
            if b != bucket || !key.starts_with(q.prefix.as_str()) {
                break 'seek;
            }
            if count == q.max {
                page.truncated = true;
                break 'seek;
            }
            count += 1;
            if let Some(cp) = common_prefix(key, &q.prefix, q.delimiter.as_deref()) {
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
            page.objects.push((key.to_owned(), decode(v.value())?));
            page.last = Some(key.to_owned());
        }
        break;
    }
    Ok(page)
}

/// ListMultipartUploads: by key, then initiation time. `after` is
/// (key-marker, upload-id-marker); without a key marker the id marker is
/// ignored, as on S3.
pub fn uploads(
    uploads: &impl ReadableTable<(&'static str, &'static str, &'static str), &'static [u8]>,
    bucket: &str,
    q: &ListQuery,
    upload_id_marker: Option<&str>,
) -> S3Result<UploadListPage> {
    let mut page = UploadListPage::default();
    let mut from: Bound<(String, String)> = match (&q.after, upload_id_marker) {
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
        let lower = match &from {
            Bound::Included((k, id)) => Bound::Included((bucket, k.as_str(), id.as_str())),
            Bound::Excluded((k, id)) => Bound::Excluded((bucket, k.as_str(), id.as_str())),
            Bound::Unbounded => Bound::Included((bucket, "", "")),
        };
        for row in uploads.range::<(&str, &str, &str)>((lower, Bound::Unbounded))? {
            let (k, v) = row?;
            let (b, key, id) = k.value();
            if b != bucket || !key.starts_with(q.prefix.as_str()) {
                break 'seek;
            }
            if count == q.max {
                page.truncated = true;
                break 'seek;
            }
            count += 1;
            if let Some(cp) = common_prefix(key, &q.prefix, q.delimiter.as_deref()) {
                page.common_prefixes.push(cp.to_owned());
                match prefix_successor(cp) {
                    Some(next) => {
                        from = Bound::Included((next, String::new()));
                        continue 'seek;
                    }
                    None => break 'seek,
                }
            }
            page.uploads
                .push((key.to_owned(), id.to_owned(), decode(v.value())?));
        }
        break;
    }
    Ok(page)
}
