//! Keyset pagination: one page of a list after an opaque cursor, and the cursor after it.
//!
//! A page query is `WHERE (sort key…, id) < (last row's…) ORDER BY … LIMIT n+1`: its cost does
//! not grow with the depth of the page (OFFSET would read and throw away every earlier row), and
//! a row inserted while someone pages never shifts the rest by one. The cursor carries the sort
//! key of the last row shown and a fingerprint of the list and filter it was made for, so a
//! cursor pasted into another filter is refused rather than silently skipping or repeating rows.

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// Rows per page when the request names no `limit`.
pub const DEFAULT_LIMIT: i64 = 100;
/// The most rows one page may carry.
pub const MAX_LIMIT: i64 = 1000;

/// Which page of a list to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// The cursor of the previous page (`None`: the first page).
    pub after: Option<String>,
    /// At most this many rows (1 to [`MAX_LIMIT`]).
    pub limit: i64,
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest {
            after: None,
            limit: DEFAULT_LIMIT,
        }
    }
}

impl PageRequest {
    /// Parses the `after` and `limit` query values (either may be absent or empty).
    pub fn parse(after: Option<&str>, limit: Option<&str>) -> Result<PageRequest> {
        let limit = match limit.map(str::trim).filter(|l| !l.is_empty()) {
            None => DEFAULT_LIMIT,
            Some(l) => match l.parse::<i64>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(Error::Invalid(format!(
                        "invalid limit {l:?} (expected a number from 1 to {MAX_LIMIT})"
                    )));
                }
            },
        };
        Ok(PageRequest {
            after: after
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_string),
            limit,
        })
    }
}

/// One page of rows and the cursor of the next one (`None` on the last page).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    /// The rows, in the list's order.
    pub rows: Vec<T>,
    /// Pass as `after` to read the next page.
    pub next: Option<String>,
}

/// FNV-1a: a stable fingerprint (not a secret, only a guard against mixing up cursors).
fn fingerprint(scope: &str) -> u64 {
    scope.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The cursor after a row whose sort key is `key`, in the list and filter named by `scope`.
pub(crate) fn encode(scope: &str, key: &[Value]) -> String {
    let text = format!("{:016x}{}", fingerprint(scope), Value::Array(key.to_vec()));
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The sort key a cursor carries, checked to belong to `scope` and to have `arity` values.
pub(crate) fn decode(scope: &str, cursor: &str, arity: usize) -> Result<Vec<Value>> {
    let bad = || {
        Error::Invalid(format!(
            "invalid cursor {:?}: pass the `after` value of a previous page unchanged",
            cursor.chars().take(80).collect::<String>()
        ))
    };
    if !cursor.len().is_multiple_of(2) || cursor.len() > 4096 {
        return Err(bad());
    }
    let bytes = (0..cursor.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(cursor.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<std::result::Result<Vec<u8>, _>>()
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (fp, key) = (text.get(..16).ok_or_else(bad)?, &text[16..]);
    if fp != format!("{:016x}", fingerprint(scope)) {
        return Err(Error::Invalid(
            "this cursor belongs to another list or filter: start again from the first page".into(),
        ));
    }
    match serde_json::from_str::<Value>(key) {
        Ok(Value::Array(v)) if v.len() == arity => Ok(v),
        _ => Err(bad()),
    }
}

/// An integer from a decoded cursor key.
pub(crate) fn int(v: &Value) -> Result<i64> {
    v.as_i64()
        .ok_or_else(|| Error::Invalid("invalid cursor: a key is not a number".into()))
}

/// A string from a decoded cursor key.
pub(crate) fn text(v: &Value) -> Result<String> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| Error::Invalid("invalid cursor: a key is not text".into()))
}

/// A value bound to a page query (the Any driver binds by concrete type).
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    /// An integer.
    Int(i64),
    /// Text.
    Text(String),
}

/// A `WHERE … ORDER BY … LIMIT` built clause by clause, numbering the `$N` placeholders.
#[derive(Debug, Default)]
pub(crate) struct Where {
    clauses: Vec<String>,
    args: Vec<Arg>,
}

impl Where {
    /// Adds a condition; each `?` in `sql` becomes the next `$N` and takes the next of `args`.
    pub(crate) fn and(&mut self, sql: &str, args: impl IntoIterator<Item = Arg>) {
        let mut out = String::new();
        let mut n = self.args.len();
        for c in sql.chars() {
            if c == '?' {
                n += 1;
                out.push_str(&format!("${n}"));
            } else {
                out.push(c);
            }
        }
        self.clauses.push(out);
        self.args.extend(args);
    }

    /// `SELECT {select} WHERE … ORDER BY {order} LIMIT n` and its arguments, ready to run.
    pub(crate) fn query(
        &self,
        select: &str,
        order: &str,
        limit: i64,
    ) -> sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments> {
        let mut sql = select.to_string();
        if !self.clauses.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&self.clauses.join(" AND "));
        }
        sql.push_str(&format!(" ORDER BY {order} LIMIT {limit}"));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for a in &self.args {
            q = match a {
                Arg::Int(i) => q.bind(*i),
                Arg::Text(s) => q.bind(s.clone()),
            };
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cursors_round_trip_and_stay_in_their_scope() {
        let c = encode("findings a", &[json!(4), json!(17)]);
        assert_eq!(
            decode("findings a", &c, 2).unwrap(),
            vec![json!(4), json!(17)]
        );
        let other = decode("findings b", &c, 2).unwrap_err().to_string();
        assert!(other.contains("another list or filter"), "{other}");
        for bad in ["zz", "abc", "00", &c[..c.len() - 2]] {
            let e = decode("findings a", bad, 2).unwrap_err().to_string();
            assert!(e.contains("invalid cursor"), "{bad}: {e}");
        }
        assert!(decode("findings a", &c, 3).is_err());
    }

    #[test]
    fn placeholders_are_numbered_in_order() {
        let mut w = Where::default();
        w.and("a = ?", [Arg::Int(1)]);
        w.and("(b, c) < (?, ?)", [Arg::Int(2), Arg::Text("x".into())]);
        assert_eq!(w.clauses, ["a = $1", "(b, c) < ($2, $3)"]);
        assert_eq!(w.args.len(), 3);
    }

    #[test]
    fn limits_are_checked() {
        assert_eq!(PageRequest::parse(None, None).unwrap().limit, DEFAULT_LIMIT);
        assert_eq!(
            PageRequest::parse(Some(" "), Some("5")).unwrap(),
            PageRequest {
                after: None,
                limit: 5
            }
        );
        for bad in ["0", "-1", "1001", "x"] {
            assert!(PageRequest::parse(None, Some(bad)).is_err(), "{bad}");
        }
    }
}
