//! CORS rules: the same struct serves `[[cors]]` in config.toml, the stored
//! PutBucketCors configuration and the XML of Get/PutBucketCors. Matching
//! follows S3: the first rule whose origin, method and requested headers all
//! match wins; origins and headers may hold one `*` wildcard.
//!
//! Reference: <https://docs.aws.amazon.com/AmazonS3/latest/userguide/cors.html>

use serde::{Deserialize, Serialize};

use crate::error::{Code, S3Error, S3Result};
use crate::xml::XmlWriter;

const METHODS: &[&str] = &["GET", "PUT", "HEAD", "POST", "DELETE"];
/// S3's limit on rules in one configuration.
const MAX_RULES: usize = 100;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsRule {
    pub id: Option<String>,
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    pub allowed_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age_secs: Option<u64>,
}

/// Response headers a browser page needs to read: S3's, and the tus
/// protocol's for resumable uploads.
pub const EXPOSED_BY_DEFAULT: &[&str] = &[
    "ETag",
    "Location",
    "x-amz-version-id",
    "x-amz-request-id",
    "x-amz-checksum-crc32",
    "x-amz-checksum-crc64nvme",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Metadata",
    "Upload-Expires",
    "Tus-Resumable",
    "Tus-Version",
    "Tus-Extension",
    "Tus-Max-Size",
];

impl CorsRule {
    /// The rule of a development server (no credentials configured, no
    /// `[[cors]]`): a page on a loopback origin (`http://localhost:5173`,
    /// `http://127.0.0.1:8080`, `http://[::1]:3000`, and their https
    /// forms) may send every method and read the headers uploads need.
    /// Pages elsewhere may not: the development credential is public, and
    /// any page the developer opens could otherwise sign with it.
    pub fn development() -> CorsRule {
        let hosts = ["localhost", "127.0.0.1", "[::1]"];
        let allowed_origins = ["http", "https"]
            .iter()
            .flat_map(|scheme| {
                hosts.iter().flat_map(move |host| {
                    [format!("{scheme}://{host}"), format!("{scheme}://{host}:*")]
                })
            })
            .collect();
        CorsRule {
            id: Some("development".into()),
            allowed_origins,
            allowed_methods: METHODS.iter().map(|m| m.to_string()).collect(),
            allowed_headers: vec!["*".into()],
            expose_headers: EXPOSED_BY_DEFAULT.iter().map(|h| h.to_string()).collect(),
            max_age_secs: Some(3000),
        }
    }
}

/// Matches `value` against a pattern with at most one `*`, ignoring ASCII
/// case when asked (header names).
fn wildcard(pattern: &str, value: &str, ignore_case: bool) -> bool {
    let eq = |a: &str, b: &str| {
        if ignore_case {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    };
    match pattern.split_once('*') {
        None => eq(pattern, value),
        Some((prefix, suffix)) => {
            value.len() >= prefix.len() + suffix.len()
                && value.is_char_boundary(prefix.len())
                && value.is_char_boundary(value.len() - suffix.len())
                && eq(&value[..prefix.len()], prefix)
                && eq(&value[value.len() - suffix.len()..], suffix)
        }
    }
}

/// Whether any of `rules` lets a page on `origin` send `method`.
pub fn allows(rules: &[CorsRule], origin: &str, method: &str) -> bool {
    rules.iter().any(|r| r.allows(origin, method, &[]))
}

impl CorsRule {
    fn allows(&self, origin: &str, method: &str, headers: &[&str]) -> bool {
        self.allowed_origins
            .iter()
            .any(|o| wildcard(o, origin, false))
            && self.allowed_methods.iter().any(|m| m == method)
            && headers.iter().all(|h| {
                self.allowed_headers
                    .iter()
                    .any(|pattern| wildcard(pattern, h, true))
            })
    }

    /// The `Access-Control-Allow-Origin` value: `*` for a rule open to
    /// every origin, else the request's origin.
    pub fn allow_origin<'a>(&self, origin: &'a str) -> &'a str {
        if self.allowed_origins.iter().any(|o| o == "*") {
            "*"
        } else {
            origin
        }
    }
}

/// The first rule allowing this origin, method and requested headers.
pub fn find<'a>(
    rules: &'a [CorsRule],
    origin: &str,
    method: &str,
    headers: &[&str],
) -> Option<&'a CorsRule> {
    rules.iter().find(|r| r.allows(origin, method, headers))
}

/// S3's checks on a configuration.
pub fn validate(rules: &[CorsRule]) -> S3Result<()> {
    let malformed = |m: &str| S3Error::with_message(Code::MalformedXML, m);
    if rules.len() > MAX_RULES {
        return Err(malformed("A CORS configuration holds at most 100 rules."));
    }
    for rule in rules {
        if rule.allowed_origins.is_empty() || rule.allowed_methods.is_empty() {
            return Err(malformed(
                "Every CORSRule needs at least one AllowedOrigin and one AllowedMethod.",
            ));
        }
        if let Some(m) = rule
            .allowed_methods
            .iter()
            .find(|m| !METHODS.contains(&m.as_str()))
        {
            return Err(S3Error::with_message(
                Code::InvalidRequest,
                format!("Found unsupported HTTP method in CORS config. Unsupported method is {m}"),
            ));
        }
        let patterns = rule.allowed_origins.iter().chain(&rule.allowed_headers);
        if let Some(p) = patterns.into_iter().find(|p| p.matches('*').count() > 1) {
            return Err(S3Error::with_message(
                Code::InvalidRequest,
                format!("AllowedOrigin and AllowedHeader may contain at most one wildcard: {p}"),
            ));
        }
    }
    Ok(())
}

#[derive(Deserialize)]
struct XmlConfiguration {
    #[serde(rename = "CORSRule", default)]
    rules: Vec<XmlRule>,
}

#[derive(Deserialize)]
struct XmlRule {
    #[serde(rename = "ID")]
    id: Option<String>,
    #[serde(rename = "AllowedOrigin", default)]
    allowed_origins: Vec<String>,
    #[serde(rename = "AllowedMethod", default)]
    allowed_methods: Vec<String>,
    #[serde(rename = "AllowedHeader", default)]
    allowed_headers: Vec<String>,
    #[serde(rename = "ExposeHeader", default)]
    expose_headers: Vec<String>,
    #[serde(rename = "MaxAgeSeconds")]
    max_age_secs: Option<u64>,
}

/// Parses and validates a PutBucketCors body.
pub fn parse_xml(body: &[u8]) -> S3Result<Vec<CorsRule>> {
    let doc: XmlConfiguration = crate::xml::parse(body)?;
    let rules: Vec<CorsRule> = doc
        .rules
        .into_iter()
        .map(|r| CorsRule {
            id: r.id,
            allowed_origins: r.allowed_origins,
            allowed_methods: r.allowed_methods,
            allowed_headers: r.allowed_headers,
            expose_headers: r.expose_headers,
            max_age_secs: r.max_age_secs,
        })
        .collect();
    if rules.is_empty() {
        return Err(S3Error::with_message(
            Code::MalformedXML,
            "A CORS configuration needs at least one CORSRule.",
        ));
    }
    validate(&rules)?;
    Ok(rules)
}

/// The GetBucketCors document.
pub fn to_xml(rules: &[CorsRule]) -> String {
    let mut w = XmlWriter::new();
    w.root("CORSConfiguration");
    for rule in rules {
        w.open("CORSRule");
        w.elem_opt("ID", rule.id.as_deref());
        for (tag, values) in [
            ("AllowedHeader", &rule.allowed_headers),
            ("AllowedMethod", &rule.allowed_methods),
            ("AllowedOrigin", &rule.allowed_origins),
            ("ExposeHeader", &rule.expose_headers),
        ] {
            for v in values {
                w.elem(tag, v);
            }
        }
        if let Some(age) = rule.max_age_secs {
            w.elem_display("MaxAgeSeconds", age);
        }
        w.close("CORSRule");
    }
    w.close("CORSConfiguration");
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        CorsRule {
            allowed_origins: v(origins),
            allowed_methods: v(methods),
            allowed_headers: v(headers),
            ..CorsRule::default()
        }
    }

    #[test]
    fn wildcards_match_one_run_of_characters() {
        assert!(wildcard("*", "https://a.example", false));
        assert!(wildcard("https://*.example", "https://app.example", false));
        assert!(!wildcard("https://*.example", "http://app.example", false));
        assert!(!wildcard("https://*.example", "https://.exampl", false));
        assert!(wildcard("x-amz-*", "X-Amz-Date", true));
        assert!(!wildcard("https://a.example", "https://A.example", false));
    }

    #[test]
    fn first_matching_rule_wins_and_headers_must_all_be_allowed() {
        let rules = [
            rule(&["https://a.example"], &["GET"], &[]),
            rule(&["*"], &["PUT", "GET"], &["content-type", "x-amz-*"]),
        ];
        let get = find(&rules, "https://a.example", "GET", &[]).unwrap();
        assert_eq!(get.allow_origin("https://a.example"), "https://a.example");
        let put = find(
            &rules,
            "https://a.example",
            "PUT",
            &["Content-Type", "x-amz-date"],
        );
        assert_eq!(put.unwrap().allow_origin("https://a.example"), "*");
        assert!(find(&rules, "https://a.example", "PUT", &["authorization"]).is_none());
        assert!(find(&rules, "https://a.example", "DELETE", &[]).is_none());
    }

    #[test]
    fn xml_round_trips_and_bad_rules_are_refused() {
        let xml = b"<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin>\
            <AllowedMethod>PUT</AllowedMethod><AllowedHeader>*</AllowedHeader>\
            <ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>3000</MaxAgeSeconds>\
            </CORSRule></CORSConfiguration>";
        let rules = parse_xml(xml).unwrap();
        assert_eq!(rules[0].expose_headers, ["ETag"]);
        assert_eq!(parse_xml(to_xml(&rules).as_bytes()).unwrap(), rules);
        let bad_method = b"<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin>\
            <AllowedMethod>PATCH</AllowedMethod></CORSRule></CORSConfiguration>";
        assert_eq!(
            parse_xml(bad_method).unwrap_err().code,
            Code::InvalidRequest
        );
        let no_origin = b"<CORSConfiguration><CORSRule><AllowedMethod>GET</AllowedMethod>\
            </CORSRule></CORSConfiguration>";
        assert_eq!(parse_xml(no_origin).unwrap_err().code, Code::MalformedXML);
        assert_eq!(
            parse_xml(b"<CORSConfiguration/>").unwrap_err().code,
            Code::MalformedXML
        );
    }
}
