//! Timestamps: milliseconds since the Unix epoch in records, ISO 8601 in XML,
//! RFC 7231 dates in headers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn system_time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

/// `Last-Modified` and friends: `Wed, 12 Oct 2009 17:50:00 GMT`.
pub fn http_date(ms: i64) -> String {
    httpdate::fmt_http_date(system_time(ms))
}

/// Parses an HTTP date, as sent in `If-Modified-Since`; `None` if malformed.
pub fn parse_http_date(s: &str) -> Option<i64> {
    let t = httpdate::parse_http_date(s).ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_millis() as i64)
}

/// XML timestamps: `2009-10-12T17:50:30.000Z`.
pub fn iso8601(ms: i64) -> String {
    let ms = ms.max(0);
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// SigV4 timestamps (`x-amz-date`): `20130524T000000Z`.
pub fn amz_date(ms: i64) -> String {
    let secs = ms.max(0) / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses a SigV4 timestamp; `None` unless it is exactly `YYYYMMDDTHHMMSSZ`
/// and a real instant.
pub fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let days = days_from_civil(y, m as u32, d as u32);
    if civil_from_days(days) != (y, m as u32, d as u32) {
        return None; // 31 February and friends
    }
    Some(((days * 86_400) + hh * 3600 + mm * 60 + ss) * 1000)
}

/// Parses the UTC timestamps of POST policies: `2007-12-01T12:00:00Z`,
/// with or without fractional seconds (`.000Z`).
pub fn parse_iso8601(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z')?;
    let (whole, fraction) = match s.split_once('.') {
        Some((w, f)) if !f.is_empty() && f.bytes().all(|c| c.is_ascii_digit()) => (w, f),
        Some(_) => return None,
        None => (s, ""),
    };
    let b = whole.as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let compact = format!(
        "{}{}{}T{}{}{}Z",
        &whole[0..4],
        &whole[5..7],
        &whole[8..10],
        &whole[11..13],
        &whole[14..16],
        &whole[17..19]
    );
    let ms: i64 = fraction
        .chars()
        .chain("000".chars())
        .take(3)
        .collect::<String>()
        .parse()
        .ok()?;
    Some(parse_amz_date(&compact)? + ms)
}

/// A proleptic Gregorian date to days since 1970-01-01 (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_timestamps_parse_with_and_without_fractions() {
        let base = parse_amz_date("20071201T120000Z").unwrap();
        assert_eq!(parse_iso8601("2007-12-01T12:00:00Z"), Some(base));
        assert_eq!(parse_iso8601("2007-12-01T12:00:00.000Z"), Some(base));
        assert_eq!(parse_iso8601("2007-12-01T12:00:00.25Z"), Some(base + 250));
        assert_eq!(parse_iso8601(&iso8601(base + 7)), Some(base + 7));
        for bad in [
            "2007-12-01T12:00:00",
            "2007-12-01 12:00:00Z",
            "2007-02-30T12:00:00Z",
            "x",
        ] {
            assert_eq!(parse_iso8601(bad), None, "{bad}");
        }
    }

    #[test]
    fn iso8601_formats_known_instants() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_255_369_830_123), "2009-10-12T17:50:30.123Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn amz_dates_round_trip_and_reject_nonsense() {
        assert_eq!(amz_date(1_369_353_600_000), "20130524T000000Z");
        assert_eq!(parse_amz_date("20130524T000000Z"), Some(1_369_353_600_000));
        assert_eq!(parse_amz_date("20000229T235959Z"), Some(951_868_799_000));
        for bad in [
            "20130231T000000Z",
            "2013-05-24T00:00Z",
            "20130524T250000Z",
            "2013052aT000000Z",
            "",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn http_dates_round_trip_at_second_precision() {
        let s = http_date(1_255_369_830_000);
        assert_eq!(s, "Mon, 12 Oct 2009 17:50:30 GMT");
        assert_eq!(parse_http_date(&s), Some(1_255_369_830_000));
        assert_eq!(parse_http_date("yesterday"), None);
    }
}
