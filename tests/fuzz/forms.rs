//! The POST policy: parsing, checking, signatures.

#[allow(unused_imports)]
use super::*;
#[allow(unused_imports)]
use super::{chunked::*, headers::*, router::*, signatures::*, xml_bodies::*};

// ---- the POST policy ----

/// Form fields a policy names.
const FIELDS: &[&str] = &[
    "bucket",
    "key",
    "acl",
    "Content-Type",
    "success_action_status",
    "x-amz-date",
    "x-amz-meta-tag",
    "x-ignore-note",
    "file",
];

fn json_scalar() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text().prop_map(Value::from),
        select(FIELDS).prop_map(|f| Value::from(format!("${f}"))),
    ]
    .boxed()
}

fn condition() -> BoxedStrategy<Value> {
    let op = prop_oneof![
        4 => select(&["eq", "starts-with", "content-length-range", "EQ", "Starts-With"][..])
            .prop_map(str::to_owned),
        1 => text(),
    ];
    let field = prop_oneof![
        4 => select(FIELDS).prop_map(|f| Value::from(format!("${f}"))),
        1 => json_scalar(),
    ];
    prop_oneof![
        3 => (select(FIELDS), json_scalar()).prop_map(|(f, v)| {
            let mut one = serde_json::Map::new();
            one.insert(f.to_owned(), v);
            Value::Object(one)
        }),
        3 => (op, field, json_scalar()).prop_map(|(op, f, v)| json!([op, f, v])),
        2 => (0..u64::MAX, 0..u64::MAX)
            .prop_map(|(a, b)| json!(["content-length-range", a.min(b), a.max(b)])),
        1 => prop::collection::vec(json_scalar(), 0..5).prop_map(Value::from),
        1 => prop::collection::btree_map(text(), json_scalar(), 0..3)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        1 => json_scalar(),
    ]
    .boxed()
}

fn policy_json() -> impl Strategy<Value = Vec<u8>> {
    let expiration = prop::option::of(prop_oneof![
        4 => Just(Value::from("2013-05-25T00:00:00.000Z")),
        1 => (0i64..253_402_300_799_999).prop_map(|ms| Value::from(time::iso8601(ms))),
        1 => json_scalar(),
    ]);
    let conditions = prop::option::of(prop_oneof![
        5 => prop::collection::vec(condition(), 0..6).prop_map(Value::from),
        1 => json_scalar(),
    ]);
    (
        expiration,
        conditions,
        prop::option::weighted(0.2, mutations()),
    )
        .prop_map(|(e, c, m)| {
            let mut doc = serde_json::Map::new();
            if let Some(e) = e {
                doc.insert("expiration".into(), e);
            }
            if let Some(c) = c {
                doc.insert("conditions".into(), c);
            }
            let json = serde_json::to_vec(&Value::Object(doc)).expect("JSON");
            match m {
                Some(m) => mutate(json, &m),
                None => json,
            }
        })
}

fn form_fields() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(
        (
            select(FIELDS).prop_map(str::to_ascii_lowercase),
            prop_oneof![text(), select(SPECIAL).prop_map(str::to_owned)],
        ),
        0..6,
    )
}

proptest! {
    #![proptest_config(fuzz_config())]

    /// Any policy document: it parses to the same thing from JSON and from
    /// base64, or is `InvalidPolicyDocument`; a check passes only before
    /// the expiry, with every condition holding and every field named.
    #[test]
    fn post_policy_parses_and_checks(
        json in policy_json(),
        fields in form_fields(),
        now in prop_oneof![Just(EXAMPLE_MS), 0..MAX_MS],
        m in prop::option::weighted(0.3, mutations()),
    ) {
        let b64 = BASE64.encode(&json);
        let b64 = match &m { Some(m) => mutate_str(&b64, m), None => b64 };
        let (parsed, decoded) =
            bounded(move || (PostPolicy::parse(&json), PostPolicy::decode(&b64)));
        check_result(&decoded)?;
        if let Err(e) = &decoded {
            prop_assert_eq!(e.code, Code::InvalidPolicyDocument);
        }
        let policy = match parsed {
            Ok(p) => p,
            Err(e) => {
                prop_assert_eq!(e.code, Code::InvalidPolicyDocument);
                return Ok(());
            }
        };
        if m.is_none() {
            let d = decoded.expect("the same document");
            prop_assert_eq!(d.expiration_ms, policy.expiration_ms);
            prop_assert_eq!(&d.conditions, &policy.conditions);
        }
        let (p, f) = (policy.clone(), fields.clone());
        let checked = bounded(move || p.check(&f, now));
        check_result(&checked)?;
        match checked {
            Ok(()) => {
                prop_assert!(now < policy.expiration_ms);
                for (name, _) in &fields {
                    let exempt = name.starts_with("x-ignore-")
                        || ["x-amz-signature", "file", "policy", "bucket"].contains(&name.as_str());
                    prop_assert!(exempt || policy.names(name), "{name} is not named");
                }
                for (name, value) in &fields {
                    if let Some(want) = policy.fixed(name) {
                        let first = fields.iter().find(|(n, _)| n == name).map(|(_, v)| v);
                        let first = first.map(String::as_str);
                        prop_assert_eq!(first, Some(want), "{}={}", name, value);
                    }
                }
            }
            Err(e) => prop_assert_eq!(e.code, Code::AccessDenied),
        }
        let _ = policy.length_range();
    }

    /// A signed POST form verifies; changed in any way, it answers a 4xx,
    /// or verifies only with the same policy and signature.
    #[test]
    fn post_policy_signature_refuses_every_change(
        json in policy_json(),
        which in 0..5usize,
        m in mutations(),
    ) {
        let policy = BASE64.encode(&json);
        let signature = signing_key().sign(&policy);
        let mut form: Vec<(String, String)> = vec![
            ("x-amz-algorithm".into(), "AWS4-HMAC-SHA256".into()),
            ("x-amz-credential".into(), format!("{KEY}/{SCOPE}")),
            ("x-amz-date".into(), TIMESTAMP.into()),
            ("x-amz-signature".into(), signature.clone()),
            ("policy".into(), policy.clone()),
        ];
        let verify = |form: Vec<(String, String)>| {
            bounded(move || {
                let policy = form[4].1.clone();
                let field =
                    |name: &str| form.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
                post_policy::verify(&auth_config(), field, &policy)
            })
        };
        prop_assert!(verify(form.clone()).is_ok());
        form[which].1 = mutate_str(&form[which].1, &m);
        let r = verify(form.clone());
        check_result(&r)?;
        if r.is_ok() {
            prop_assert_eq!(&form[4].1, &policy);
            prop_assert_eq!(form[3].1.to_ascii_lowercase(), signature);
        }
    }
}
