//! `json-check`: standard input is one JSON value holding what is asked (busybox has no jq).

use std::io;

use crate::Failed;

/// [`crate::cli::Command::JsonCheck`]: standard input against `has`.
pub fn cmd_json_check(has: &[String]) -> io::Result<Result<(), Failed>> {
    let mut text = String::new();
    io::Read::read_to_string(&mut io::stdin(), &mut text)?;
    Ok(json_check(&text, has))
}

/// `text` is one JSON value holding every `POINTER[=VALUE]` of `has`.
fn json_check(text: &str, has: &[String]) -> Result<(), Failed> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|err| Failed(format!("not one JSON value ({err}): {text:?}")))?;
    for want in has {
        let (pointer, expected) = match want.split_once('=') {
            Some((p, v)) => (p, Some(v)),
            None => (want.as_str(), None),
        };
        let found = value
            .pointer(pointer)
            .ok_or_else(|| Failed(format!("no {pointer} in {value}")))?;
        let found_text = match found {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if let Some(expected) = expected.filter(|e| *e != found_text) {
            return Err(Failed(format!("{pointer} is {found}, expected {expected}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_check_wants_one_value_and_the_keys_asked_for() {
        let failure = r#"{"op":"attr set","errno":16,"error":"EBUSY","reason":"mapped"}"#;
        let has = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(json_check(failure, &has(&["/op=attr set", "/errno=16", "/reason"])).is_ok());
        assert!(json_check(failure, &has(&["/errno=22"])).is_err());
        assert!(json_check(failure, &has(&["/path"])).is_err());
        assert!(json_check(
            r#"{"regions":[{"path":"/dev/carveout0"}]}"#,
            &has(&["/regions/0/path=/dev/carveout0"])
        )
        .is_ok());
        // Text around the value, two values, or nothing: not what carveoutctl --json promises.
        assert!(json_check("carveoutctl: oops\n{}", &[]).is_err());
        assert!(json_check("{}\n{}\n", &[]).is_err());
        assert!(json_check("", &[]).is_err());
        assert!(json_check("{\"a\":true}\n", &has(&["/a=true"])).is_ok());
    }
}
