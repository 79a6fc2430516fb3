//! The README documents every configuration key and every flag: checked
//! against what the binary accepts (serde's own list of fields, `--help`)
//! and against the shipped config.toml.

use std::collections::BTreeSet;

use stowage::config::Config;

const README: &str = include_str!("../../README.md");
const SHIPPED: &str = include_str!("../../config.toml");

/// The names inside backticks in `text`.
fn quoted(text: &str) -> impl Iterator<Item = &str> {
    text.split('`').skip(1).step_by(2)
}

/// The fields a TOML table takes, from the error serde gives for one it
/// does not: "unknown field `x`, expected one of `a`, `b`, ...".
fn fields(toml: &str, prefix: &str) -> BTreeSet<String> {
    let e = Config::from_toml(toml).unwrap_err();
    let (_, expected) = e
        .split_once("expected one of")
        .expect("serde lists the fields");
    let expected = expected.lines().next().unwrap();
    quoted(expected).map(|f| format!("{prefix}{f}")).collect()
}

fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let (_, rest) = text.split_once(heading).expect(heading);
    rest.split("\n## ").next().unwrap()
}

#[test]
fn every_configuration_key_is_documented_and_shipped() {
    let mut keys = fields("not_a_key = 1", "");
    keys.remove("limits");
    keys.extend(fields("[limits]\nnot_a_key = 1", "limits."));
    assert!(keys.contains("listen") && keys.contains("limits.max_object_size"));

    // The README's table: `key` (or `a`, `b`) in the first column, tables
    // of tables as `[[name]]`.
    let mut documented = BTreeSet::new();
    let table = section(README, "## Configuration")
        .split("\n### ")
        .next()
        .unwrap();
    for row in table.lines() {
        let Some(first) = row.strip_prefix("| ").and_then(|r| r.split(" |").next()) else {
            continue;
        };
        for key in quoted(first) {
            documented.insert(
                key.trim_start_matches("[[")
                    .trim_end_matches("]]")
                    .to_owned(),
            );
        }
    }
    documented.remove("key");
    assert_eq!(
        documented.symmetric_difference(&keys).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "README configuration table against the keys Config takes"
    );

    // The shipped config.toml names each key, set or commented out.
    let mut shipped = BTreeSet::new();
    let mut table = "";
    for line in SHIPPED.lines() {
        let line = line.trim_start_matches('#').trim();
        if line == "[limits]" {
            table = "limits.";
        } else if let Some(name) = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
            shipped.insert(name.to_owned());
            table = "-";
        } else if let Some((key, _)) = line.split_once(" = ")
            && table != "-"
            && !key.is_empty()
            && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        {
            shipped.insert(format!("{table}{key}"));
        }
    }
    let missing: Vec<_> = keys.difference(&shipped).collect();
    assert!(missing.is_empty(), "config.toml does not show {missing:?}");
}

#[test]
fn every_flag_is_documented() {
    let help = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_stowage"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let text = help(&["--help"]) + &help(&["verify", "--help"]);
    let flags: BTreeSet<&str> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .collect();
    assert!(flags.contains("--metadata-url") && flags.contains("--repair"));
    let usage = section(README, "## The binary");
    let usage = usage
        .split("```text")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    for flag in &flags {
        assert!(
            usage.contains(flag),
            "the README's usage block lacks {flag}"
        );
    }
    for word in usage.split_whitespace().map(|w| w.trim_matches(['[', ']'])) {
        if word.starts_with("--") {
            assert!(
                flags.contains(word),
                "the README names {word}, which --help does not"
            );
        }
    }
}

/// `./data` is relative to the working directory: verify run from
/// elsewhere says which path it looked at and why.
#[test]
fn verify_names_the_path_it_looked_for() {
    let elsewhere = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stowage"))
        .arg("verify")
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    let looked = elsewhere
        .path()
        .canonicalize()
        .unwrap()
        .join("data/meta.redb");
    assert!(said.contains(&looked.display().to_string()), "{said}");
    assert!(said.contains("relative to the working directory"), "{said}");
}
