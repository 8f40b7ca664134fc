//! POSIX shell quoting for every path and argument this provider puts into a remote command line.
//!
//! The remote side runs each command through the login user's shell (`sh -c` semantics), so a
//! value is either left bare when it holds only characters no POSIX shell treats specially, or put
//! in single quotes, inside which nothing is special except the closing quote itself (written as
//! `'\''`). NUL cannot be carried by any command line and is refused.

use std::ffi::OsStr;
use std::path::Path;

use crate::SshError;

/// Characters that need no quoting in any POSIX shell word (no globbing, expansion, splitting,
/// redirection or tilde expansion can start from them; `~` and `=` only matter at the start or in
/// assignments, and are quoted anyway by not being listed).
fn is_bare(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ',' | ':' | '+' | '@' | '%')
}

/// `value` as one POSIX shell word.
pub fn quote(value: &str) -> Result<String, SshError> {
    if value.contains('\0') {
        return Err(SshError::Quote {
            value: value.replace('\0', "\\0"),
            reason: "contains NUL",
        });
    }
    if !value.is_empty() && value.chars().all(is_bare) {
        return Ok(value.to_string());
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    Ok(out)
}

/// An OS string (a path, a QEMU argument) as one POSIX shell word; it must be UTF-8, because an
/// SSH exec request carries the command as text.
pub fn quote_os(value: &OsStr) -> Result<String, SshError> {
    let text = value.to_str().ok_or_else(|| SshError::Quote {
        value: value.to_string_lossy().into_owned(),
        reason: "is not UTF-8",
    })?;
    quote(text)
}

/// A path as one POSIX shell word.
pub fn quote_path(path: &Path) -> Result<String, SshError> {
    quote_os(path.as_os_str())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::process::Command;

    /// What `sh` makes of `echo`-free printing of the quoted word: the exact original bytes.
    fn round_trip(value: &str) -> String {
        let script = format!("printf '%s' {}", quote(value).unwrap());
        let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
        assert!(out.status.success(), "{script}");
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn plain_words_stay_bare() {
        assert_eq!(
            quote("/srv/cdvm/vms/ssh-0011").unwrap(),
            "/srv/cdvm/vms/ssh-0011"
        );
        assert_eq!(
            quote("name=opt/cdvm/tee,string=sim").unwrap(),
            "'name=opt/cdvm/tee,string=sim'"
        );
        assert_eq!(quote("-name").unwrap(), "-name");
    }

    #[test]
    fn special_characters_are_single_quoted() {
        assert_eq!(quote("").unwrap(), "''");
        assert_eq!(quote("a b").unwrap(), "'a b'");
        assert_eq!(quote("it's").unwrap(), "'it'\\''s'");
        assert_eq!(quote("$(reboot)").unwrap(), "'$(reboot)'");
        assert_eq!(quote("~root").unwrap(), "'~root'");
    }

    #[test]
    fn the_shell_gets_back_exactly_the_value() {
        for value in [
            "",
            "plain",
            "a b  c",
            "it's",
            "''",
            "\"double\"",
            "$HOME `id` $(id) ${x}",
            "back\\slash",
            "semi;colon && pipe | amp & gt > lt <",
            "glob * ? [a-z]",
            "new\nline\ttab",
            "~ ! # =",
            "ünïcödé",
            "-n",
        ] {
            assert_eq!(round_trip(value), value, "{value:?}");
        }
    }

    #[test]
    fn nul_is_refused() {
        let err = quote("a\0b").unwrap_err();
        assert!(err.to_string().contains("NUL"), "{err}");
    }

    #[test]
    fn non_utf8_paths_are_refused() {
        use std::os::unix::ffi::OsStrExt;
        let err = quote_os(OsStr::from_bytes(b"/tmp/\xff")).unwrap_err();
        assert!(err.to_string().contains("UTF-8"), "{err}");
    }
}
