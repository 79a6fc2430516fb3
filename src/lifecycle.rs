//! Lifecycle rules: the document of Get/Put/DeleteBucketLifecycle, and when
//! a bucket's rules make an object or an incomplete upload expire. The
//! sweep that acts on them is [`crate::store::Store::sweep`].
//!
//! Supported actions: `Expiration` (`Days` or `Date`) and
//! `AbortIncompleteMultipartUpload` (`DaysAfterInitiation`), filtered by
//! prefix, tags and object size. Stowage keeps no versions, so
//! `NoncurrentVersionExpiration` and `ExpiredObjectDeleteMarker` are kept
//! and returned but have nothing to act on; storage-class transitions are
//! refused (there is one class).
//!
//! Reference: <https://docs.aws.amazon.com/AmazonS3/latest/userguide/intro-lifecycle-rules.html>

use serde::{Deserialize, Serialize};

use crate::error::{Code, S3Error, S3Result};
use crate::xml::XmlWriter;

/// S3's limit on rules in one configuration.
const MAX_RULES: usize = 1000;
const MAX_ID_LEN: usize = 255;
const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleRule {
    pub id: String,
    pub enabled: bool,
    pub filter: Filter,
    pub expiration: Option<Expiration>,
    /// `AbortIncompleteMultipartUpload`'s `DaysAfterInitiation`.
    pub abort_after_days: Option<u32>,
    /// `NoncurrentVersionExpiration`'s `NoncurrentDays`: kept, never due.
    pub noncurrent_days: Option<u32>,
}

/// Which keys a rule covers. `legacy` marks a rule given with the old
/// rule-level `<Prefix>` rather than a `<Filter>`, so it is returned as it
/// came.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    pub prefix: String,
    pub tags: Vec<(String, String)>,
    pub size_greater_than: Option<u64>,
    pub size_less_than: Option<u64>,
    pub legacy: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expiration {
    /// Days after the object was last written.
    Days(u32),
    /// From this instant on (midnight UTC), in ms.
    Date(i64),
    /// `ExpiredObjectDeleteMarker`: there are no delete markers here.
    DeleteMarker(bool),
}

impl Filter {
    fn matches_key(&self, key: &str) -> bool {
        key.starts_with(&self.prefix)
    }

    fn matches_object(&self, key: &str, tags: &[(String, String)], size: u64) -> bool {
        self.matches_key(key)
            && self.tags.iter().all(|t| tags.contains(t))
            && self.size_greater_than.is_none_or(|min| size > min)
            && self.size_less_than.is_none_or(|max| size < max)
    }

    /// Only a prefix: also matches uploads, which have no tags or size yet.
    fn by_prefix_only(&self) -> bool {
        self.tags.is_empty() && self.size_greater_than.is_none() && self.size_less_than.is_none()
    }
}

/// `days` after `start`, rounded up to the next midnight UTC as S3 rounds.
/// `day_ms` is the length of a day: 86,400,000 but in tests.
pub fn after_days(start_ms: i64, days: u32, day_ms: i64) -> i64 {
    let day_ms = day_ms.max(1);
    let t = start_ms.saturating_add(i64::from(days).saturating_mul(day_ms));
    t.div_euclid(day_ms)
        .saturating_add(i64::from(t.rem_euclid(day_ms) != 0))
        .saturating_mul(day_ms)
}

/// When an object expires under `rules`, and the id of the rule that says
/// so: the earliest of the enabled, matching `Expiration` rules.
pub fn object_expiry<'a>(
    rules: &'a [LifecycleRule],
    (key, tags, size): (&str, &[(String, String)], u64),
    last_modified_ms: i64,
    day_ms: i64,
) -> Option<(i64, &'a str)> {
    rules
        .iter()
        .filter(|r| r.enabled && r.filter.matches_object(key, tags, size))
        .filter_map(|r| {
            let at = match r.expiration.as_ref()? {
                Expiration::Days(days) => after_days(last_modified_ms, *days, day_ms),
                Expiration::Date(at) => *at,
                Expiration::DeleteMarker(_) => return None,
            };
            Some((at, r.id.as_str()))
        })
        .min()
}

/// When an incomplete upload of `key` is aborted under `rules`, and by
/// which rule; `None` when no enabled rule covers it (the server's default
/// age applies).
pub fn upload_expiry<'a>(
    rules: &'a [LifecycleRule],
    key: &str,
    initiated_ms: i64,
    day_ms: i64,
) -> Option<(i64, &'a str)> {
    rules
        .iter()
        .filter(|r| r.enabled && r.filter.by_prefix_only() && r.filter.matches_key(key))
        .filter_map(|r| {
            let days = r.abort_after_days?;
            Some((after_days(initiated_ms, days, day_ms), r.id.as_str()))
        })
        .min()
}

/// The shortest age at which any of `rules` aborts an upload.
pub fn shortest_abort_age(rules: &[LifecycleRule], day_ms: i64) -> Option<i64> {
    rules
        .iter()
        .filter(|r| r.enabled)
        .filter_map(|r| r.abort_after_days)
        .map(|days| i64::from(days).saturating_mul(day_ms))
        .min()
}

/// Whether any enabled rule can expire objects (and so the sweep must look
/// at the bucket's objects), and under which prefixes: each prefix once,
/// none inside another.
pub fn expiring_prefixes(rules: &[LifecycleRule]) -> Vec<String> {
    let mut prefixes: Vec<String> = rules
        .iter()
        .filter(|r| {
            r.enabled
                && matches!(
                    r.expiration,
                    Some(Expiration::Days(_) | Expiration::Date(_))
                )
        })
        .map(|r| r.filter.prefix.clone())
        .collect();
    prefixes.sort();
    prefixes.dedup();
    let mut kept: Vec<String> = Vec::new();
    for p in prefixes {
        if !kept.iter().any(|k| p.starts_with(k.as_str())) {
            kept.push(p);
        }
    }
    kept
}

// ---- the XML document ----

#[derive(Deserialize)]
struct XmlConfiguration {
    #[serde(rename = "Rule", default)]
    rules: Vec<XmlRule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct XmlRule {
    #[serde(rename = "ID")]
    id: Option<String>,
    prefix: Option<String>,
    filter: Option<XmlFilter>,
    status: Option<String>,
    expiration: Option<XmlExpiration>,
    abort_incomplete_multipart_upload: Option<XmlAbort>,
    noncurrent_version_expiration: Option<XmlNoncurrent>,
    #[serde(default)]
    transition: Vec<serde::de::IgnoredAny>,
    #[serde(default)]
    noncurrent_version_transition: Vec<serde::de::IgnoredAny>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct XmlFilter {
    prefix: Option<String>,
    tag: Option<XmlTag>,
    object_size_greater_than: Option<u64>,
    object_size_less_than: Option<u64>,
    and: Option<XmlAnd>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct XmlAnd {
    prefix: Option<String>,
    #[serde(rename = "Tag", default)]
    tags: Vec<XmlTag>,
    object_size_greater_than: Option<u64>,
    object_size_less_than: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct XmlTag {
    key: String,
    #[serde(default)]
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct XmlExpiration {
    days: Option<i64>,
    date: Option<String>,
    expired_object_delete_marker: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct XmlAbort {
    days_after_initiation: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct XmlNoncurrent {
    noncurrent_days: Option<i64>,
}

fn malformed(message: &str) -> S3Error {
    S3Error::with_message(Code::MalformedXML, message)
}

fn invalid(message: impl Into<String>) -> S3Error {
    S3Error::with_message(Code::InvalidArgument, message)
}

fn positive_days(days: i64, what: &str) -> S3Result<u32> {
    match u32::try_from(days) {
        Ok(d) if d > 0 => Ok(d),
        _ => Err(invalid(format!("{what} must be a positive integer"))),
    }
}

fn filter_of(rule: &XmlRule) -> S3Result<Filter> {
    let filter = match (&rule.prefix, &rule.filter) {
        (Some(_), Some(_)) => {
            return Err(malformed(
                "A rule holds either a Filter or a Prefix, not both.",
            ));
        }
        (Some(prefix), None) => {
            return Ok(Filter {
                prefix: prefix.clone(),
                legacy: true,
                ..Filter::default()
            });
        }
        (None, None) => return Ok(Filter::default()),
        (None, Some(f)) => f,
    };
    let given = [
        filter.prefix.is_some(),
        filter.tag.is_some(),
        filter.object_size_greater_than.is_some(),
        filter.object_size_less_than.is_some(),
        filter.and.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(malformed(
            "A Filter holds one condition; combine several in an And.",
        ));
    }
    let tag = |t: &XmlTag| (t.key.clone(), t.value.clone());
    Ok(match &filter.and {
        Some(and) => Filter {
            prefix: and.prefix.clone().unwrap_or_default(),
            tags: and.tags.iter().map(tag).collect(),
            size_greater_than: and.object_size_greater_than,
            size_less_than: and.object_size_less_than,
            legacy: false,
        },
        None => Filter {
            prefix: filter.prefix.clone().unwrap_or_default(),
            tags: filter.tag.iter().map(tag).collect(),
            size_greater_than: filter.object_size_greater_than,
            size_less_than: filter.object_size_less_than,
            legacy: false,
        },
    })
}

fn expiration_of(e: &XmlExpiration) -> S3Result<Expiration> {
    match (e.days, &e.date, e.expired_object_delete_marker) {
        (Some(days), None, None) => Ok(Expiration::Days(positive_days(
            days,
            "'Days' for Expiration action",
        )?)),
        (None, Some(date), None) => {
            let at = crate::time::parse_iso8601(date.trim())
                .ok_or_else(|| invalid("Invalid date, expected ISO 8601 (2026-01-01T00:00:00Z)"))?;
            if at.rem_euclid(DAY_MS) != 0 {
                return Err(invalid("'Date' must be at midnight GMT"));
            }
            if at < 0 {
                // Found by fuzzing: an instant before 1970 cannot be
                // written back as given (regression_lifecycle_date_before_1970).
                return Err(invalid("'Date' must not be before 1970-01-01"));
            }
            Ok(Expiration::Date(at))
        }
        (None, None, Some(marker)) => Ok(Expiration::DeleteMarker(marker)),
        _ => Err(malformed(
            "An Expiration holds exactly one of Days, Date and ExpiredObjectDeleteMarker.",
        )),
    }
}

fn rule_of(rule: XmlRule) -> S3Result<LifecycleRule> {
    let enabled = match rule.status.as_deref() {
        Some("Enabled") => true,
        Some("Disabled") => false,
        _ => return Err(malformed("A rule's Status is Enabled or Disabled.")),
    };
    if !rule.transition.is_empty() || !rule.noncurrent_version_transition.is_empty() {
        return Err(S3Error::with_message(
            Code::NotImplemented,
            "Transitions are not supported: this server has one storage class.",
        ));
    }
    let id = match rule.id.as_deref() {
        None | Some("") => id_hex_short(),
        Some(id) if id.chars().count() > MAX_ID_LEN => {
            return Err(invalid("ID length should not exceed allowed limit of 255"));
        }
        Some(id) => id.to_owned(),
    };
    let filter = filter_of(&rule)?;
    let expiration = rule.expiration.as_ref().map(expiration_of).transpose()?;
    let abort_after_days = match &rule.abort_incomplete_multipart_upload {
        Some(a) => Some(positive_days(
            a.days_after_initiation.ok_or_else(|| {
                malformed("AbortIncompleteMultipartUpload needs DaysAfterInitiation.")
            })?,
            "'DaysAfterInitiation' for AbortIncompleteMultipartUpload action",
        )?),
        None => None,
    };
    let noncurrent_days = match &rule.noncurrent_version_expiration {
        Some(n) => Some(positive_days(
            n.noncurrent_days
                .ok_or_else(|| malformed("NoncurrentVersionExpiration needs NoncurrentDays."))?,
            "'NoncurrentDays' for NoncurrentVersionExpiration action",
        )?),
        None => None,
    };
    if expiration.is_none() && abort_after_days.is_none() && noncurrent_days.is_none() {
        return Err(S3Error::with_message(
            Code::InvalidRequest,
            "At least one action needs to be specified in a rule",
        ));
    }
    if abort_after_days.is_some() && !filter.by_prefix_only() {
        return Err(S3Error::with_message(
            Code::InvalidRequest,
            "AbortIncompleteMultipartUpload cannot be specified with Tags or object size filters.",
        ));
    }
    if matches!(expiration, Some(Expiration::DeleteMarker(_))) && !filter.tags.is_empty() {
        return Err(S3Error::with_message(
            Code::InvalidRequest,
            "ExpiredObjectDeleteMarker cannot be specified with Tags.",
        ));
    }
    Ok(LifecycleRule {
        id,
        enabled,
        filter,
        expiration,
        abort_after_days,
        noncurrent_days,
    })
}

/// A rule without an ID gets one, as on S3.
fn id_hex_short() -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("the OS random source works");
    format!("{:016x}", u64::from_le_bytes(b))
}

/// Parses and validates a PutBucketLifecycleConfiguration body.
pub fn parse_xml(body: &[u8]) -> S3Result<Vec<LifecycleRule>> {
    let doc: XmlConfiguration = crate::xml::parse(body)?;
    if doc.rules.is_empty() {
        return Err(malformed(
            "A lifecycle configuration needs at least one Rule.",
        ));
    }
    if doc.rules.len() > MAX_RULES {
        return Err(invalid(
            "A lifecycle configuration holds at most 1000 rules.",
        ));
    }
    let rules = doc
        .rules
        .into_iter()
        .map(rule_of)
        .collect::<S3Result<Vec<_>>>()?;
    for (i, rule) in rules.iter().enumerate() {
        if rules[..i].iter().any(|r| r.id == rule.id) {
            return Err(invalid(
                "Rule ID must be unique. Found same ID for more than one rule",
            ));
        }
    }
    Ok(rules)
}

fn write_filter(w: &mut XmlWriter, f: &Filter) {
    if f.legacy {
        w.elem("Prefix", &f.prefix);
        return;
    }
    let conditions = usize::from(!f.prefix.is_empty())
        + f.tags.len()
        + usize::from(f.size_greater_than.is_some())
        + usize::from(f.size_less_than.is_some());
    let write_tag = |w: &mut XmlWriter, (k, v): &(String, String)| {
        w.open("Tag");
        w.elem("Key", k);
        w.elem("Value", v);
        w.close("Tag");
    };
    w.open("Filter");
    if conditions > 1 {
        w.open("And");
    }
    if !f.prefix.is_empty() || conditions == 0 {
        w.elem("Prefix", &f.prefix);
    }
    for tag in &f.tags {
        write_tag(w, tag);
    }
    if let Some(n) = f.size_greater_than {
        w.elem_display("ObjectSizeGreaterThan", n);
    }
    if let Some(n) = f.size_less_than {
        w.elem_display("ObjectSizeLessThan", n);
    }
    if conditions > 1 {
        w.close("And");
    }
    w.close("Filter");
}

/// The GetBucketLifecycleConfiguration document.
pub fn to_xml(rules: &[LifecycleRule]) -> String {
    let mut w = XmlWriter::new();
    w.root("LifecycleConfiguration");
    for rule in rules {
        w.open("Rule");
        w.elem("ID", &rule.id);
        write_filter(&mut w, &rule.filter);
        w.elem("Status", if rule.enabled { "Enabled" } else { "Disabled" });
        if let Some(e) = &rule.expiration {
            w.open("Expiration");
            match e {
                Expiration::Days(d) => w.elem_display("Days", d),
                Expiration::Date(at) => w.elem("Date", &crate::time::iso8601(*at)),
                Expiration::DeleteMarker(m) => w.elem_display("ExpiredObjectDeleteMarker", m),
            }
            w.close("Expiration");
        }
        if let Some(d) = rule.noncurrent_days {
            w.open("NoncurrentVersionExpiration");
            w.elem_display("NoncurrentDays", d);
            w.close("NoncurrentVersionExpiration");
        }
        if let Some(d) = rule.abort_after_days {
            w.open("AbortIncompleteMultipartUpload");
            w.elem_display("DaysAfterInitiation", d);
            w.close("AbortIncompleteMultipartUpload");
        }
        w.close("Rule");
    }
    w.close("LifecycleConfiguration");
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(rules: &str) -> S3Result<Vec<LifecycleRule>> {
        parse_xml(format!("<LifecycleConfiguration>{rules}</LifecycleConfiguration>").as_bytes())
    }

    fn code(rules: &str) -> Code {
        parse(rules).unwrap_err().code
    }

    #[test]
    fn days_round_up_to_the_next_midnight() {
        let day = DAY_MS;
        assert_eq!(after_days(0, 1, day), day);
        assert_eq!(after_days(1, 1, day), 2 * day);
        assert_eq!(after_days(day - 1, 2, day), 3 * day);
        // A one-second test day rounds to whole seconds.
        assert_eq!(after_days(1_500, 2, 1000), 4_000);
    }

    #[test]
    fn every_filter_form_parses_and_round_trips() {
        let rules = parse(
            "<Rule><ID>a</ID><Filter><Prefix>logs/</Prefix></Filter><Status>Enabled</Status><Expiration><Days>3</Days></Expiration></Rule>\
             <Rule><ID>b</ID><Filter><And><Prefix>tmp/</Prefix><Tag><Key>k</Key><Value>v</Value></Tag><ObjectSizeGreaterThan>10</ObjectSizeGreaterThan></And></Filter><Status>Disabled</Status><Expiration><Date>2027-01-01T00:00:00Z</Date></Expiration></Rule>\
             <Rule><ID>c</ID><Prefix>old/</Prefix><Status>Enabled</Status><AbortIncompleteMultipartUpload><DaysAfterInitiation>2</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule>\
             <Rule><ID>d</ID><Filter></Filter><Status>Enabled</Status><NoncurrentVersionExpiration><NoncurrentDays>5</NoncurrentDays></NoncurrentVersionExpiration></Rule>",
        )
        .unwrap();
        assert_eq!(rules[0].filter.prefix, "logs/");
        assert_eq!(rules[0].expiration, Some(Expiration::Days(3)));
        assert_eq!(rules[1].filter.tags, vec![("k".into(), "v".into())]);
        assert_eq!(rules[1].filter.size_greater_than, Some(10));
        assert!(!rules[1].enabled);
        assert!(rules[2].filter.legacy);
        assert_eq!(rules[2].abort_after_days, Some(2));
        assert_eq!(rules[3].noncurrent_days, Some(5));
        let again = parse_xml(to_xml(&rules).as_bytes()).unwrap();
        assert_eq!(again, rules);
    }

    #[test]
    fn bad_configurations_get_s3s_errors() {
        let exp = "<Expiration><Days>1</Days></Expiration>";
        assert_eq!(parse("").unwrap_err().code, Code::MalformedXML);
        assert_eq!(
            code(&format!("<Rule><Status>On</Status>{exp}</Rule>")),
            Code::MalformedXML
        );
        assert_eq!(
            code(&format!(
                "<Rule><Prefix/><Filter/><Status>Enabled</Status>{exp}</Rule>"
            )),
            Code::MalformedXML
        );
        assert_eq!(
            code("<Rule><Status>Enabled</Status><Expiration><Days>0</Days></Expiration></Rule>"),
            Code::InvalidArgument
        );
        assert_eq!(
            code(
                "<Rule><Status>Enabled</Status><Expiration><Date>2027-01-01T10:00:00Z</Date></Expiration></Rule>"
            ),
            Code::InvalidArgument
        );
        assert_eq!(
            code("<Rule><Status>Enabled</Status></Rule>"),
            Code::InvalidRequest
        );
        assert_eq!(
            code(
                "<Rule><Filter><Tag><Key>k</Key><Value>v</Value></Tag></Filter><Status>Enabled</Status><AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule>"
            ),
            Code::InvalidRequest
        );
        assert_eq!(
            code(&format!(
                "<Rule><ID>x</ID><Status>Enabled</Status>{exp}</Rule><Rule><ID>x</ID><Status>Enabled</Status>{exp}</Rule>"
            )),
            Code::InvalidArgument
        );
        assert_eq!(
            code(
                "<Rule><Status>Enabled</Status><Transition><Days>1</Days><StorageClass>GLACIER</StorageClass></Transition></Rule>"
            ),
            Code::NotImplemented
        );
        assert_eq!(
            code(&format!(
                "<Rule><Filter><Prefix>a</Prefix><Tag><Key>k</Key><Value>v</Value></Tag></Filter><Status>Enabled</Status>{exp}</Rule>"
            )),
            Code::MalformedXML
        );
    }

    #[test]
    fn the_earliest_matching_enabled_rule_decides() {
        let rules = parse(
            "<Rule><ID>all</ID><Filter/><Status>Enabled</Status><Expiration><Days>10</Days></Expiration><AbortIncompleteMultipartUpload><DaysAfterInitiation>7</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule>\
             <Rule><ID>logs</ID><Filter><Prefix>logs/</Prefix></Filter><Status>Enabled</Status><Expiration><Days>2</Days></Expiration><AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule>\
             <Rule><ID>off</ID><Filter/><Status>Disabled</Status><Expiration><Days>1</Days></Expiration></Rule>\
             <Rule><ID>tagged</ID><Filter><Tag><Key>t</Key><Value>1</Value></Tag></Filter><Status>Enabled</Status><Expiration><Days>3</Days></Expiration></Rule>",
        )
        .unwrap();
        let day = DAY_MS;
        let none: Vec<(String, String)> = Vec::new();
        let tagged = vec![("t".to_owned(), "1".to_owned())];
        assert_eq!(
            object_expiry(&rules, ("a", &none, 1), 0, day),
            Some((10 * day, "all"))
        );
        assert_eq!(
            object_expiry(&rules, ("logs/x", &none, 1), 0, day),
            Some((2 * day, "logs"))
        );
        assert_eq!(
            object_expiry(&rules, ("a", &tagged, 1), 0, day),
            Some((3 * day, "tagged"))
        );
        assert_eq!(upload_expiry(&rules, "logs/x", 0, day), Some((day, "logs")));
        assert_eq!(upload_expiry(&rules, "b", 0, day), Some((7 * day, "all")));
        assert_eq!(upload_expiry(&rules[1..], "b", 0, day), None);
        assert_eq!(shortest_abort_age(&rules, day), Some(day));
        assert_eq!(expiring_prefixes(&rules), vec![String::new()]);
        assert_eq!(expiring_prefixes(&rules[1..2]), vec!["logs/".to_owned()]);
    }
}
