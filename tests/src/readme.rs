//! The README's figures, held to the tests: a test that counts something the README
//! states asserts the README states its count ([`states`]), so a fixture added or lost
//! fails until the README says so. `tests/README.md` lists every such figure.

use std::path::PathBuf;

/// `README.md`, its whitespace runs made single spaces (a figure may wrap a line).
fn text() -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let t = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    t.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Asserts the README says `phrase` (whitespace runs count as one space).
pub fn states(phrase: &str) {
    let want = phrase.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        text().contains(&want),
        "README.md does not say {want:?}: the count changed, update the README (and tests/README.md)"
    );
}

/// `n` as the README writes it: thousands separated by commas from 10,000 on
/// (`4,499` too: every number of four digits or more).
pub fn n(x: usize) -> String {
    let s = x.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_as_the_readme_writes_them() {
        assert_eq!(super::n(7), "7");
        assert_eq!(super::n(363), "363");
        assert_eq!(super::n(4499), "4,499");
        assert_eq!(super::n(100_000), "100,000");
        assert_eq!(super::n(1_234_567), "1,234,567");
    }
}
