//! Passwords from standard input.

use super::*;
use crate::Env;

#[test]
fn password_from_stdin_drops_line_break_only() {
    let read = |input: &str| {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut stdin = input.as_bytes();
        let mut io = Io {
            stdin: &mut stdin,
            out: &mut out,
            err: &mut err,
            env: Env::default(),
        };
        read_password(&mut io)
    };
    assert_eq!(read("  pa ss\r\n").unwrap(), "  pa ss");
    assert_eq!(read("tok\n").unwrap(), "tok");
    assert!(read("\n").is_err());
}
