//! The wildcards of `contains`/`startswith`/`endswith` values. Dataverse
//! evaluates these functions as SQL `LIKE`, so `%` matches any run of
//! characters, `_` any one character, `[abc]`/`[a-z]` one of a set and
//! `[^abc]` one outside it; a wildcard character is matched literally by
//! wrapping it in brackets (`[%]`, `[_]`, `[[]`). ("Filter rows using
//! OData", use wildcard characters: <https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query/filter-rows>.)
//! Both sides are already lower-cased by the caller (string filters are
//! case-insensitive).

/// Which part of the text the pattern must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Anchor {
    /// Anywhere (`contains`).
    Anywhere,
    /// At the start (`startswith`).
    Start,
    /// At the end (`endswith`).
    End,
}

/// One element of a pattern.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Char(char),
    /// `_`
    One,
    /// `%`
    Many,
    /// `[...]` or `[^...]`: single characters and ranges.
    Set {
        negate: bool,
        items: Vec<(char, char)>,
    },
}

/// Whether `text` matches `pattern` at `anchor`.
pub(super) fn matches(text: &str, pattern: &str, anchor: Anchor) -> bool {
    if !pattern.contains(['%', '_', '[']) {
        // No wildcard: plain substring tests, as fast as before.
        return match anchor {
            Anchor::Anywhere => text.contains(pattern),
            Anchor::Start => text.starts_with(pattern),
            Anchor::End => text.ends_with(pattern),
        };
    }
    let mut tokens = Vec::new();
    if anchor != Anchor::Start {
        tokens.push(Token::Many);
    }
    tokens.extend(parse(pattern));
    if anchor != Anchor::End {
        tokens.push(Token::Many);
    }
    let text: Vec<char> = text.chars().collect();
    matches_tokens(&text, &tokens)
}

fn parse(pattern: &str) -> Vec<Token> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '%' => out.push(Token::Many),
            '_' => out.push(Token::One),
            '[' => match set(&chars[i + 1..]) {
                Some((token, used)) => {
                    out.push(token);
                    i += used;
                }
                // An unclosed bracket is an ordinary character.
                None => out.push(Token::Char('[')),
            },
            c => out.push(Token::Char(c)),
        }
        i += 1;
    }
    out
}

/// The set after a `[`, and how many characters it used (up to and
/// including the `]`). `[]` closes at the second `]` (a leading `]` is a
/// member), as in SQL Server.
fn set(rest: &[char]) -> Option<(Token, usize)> {
    let negate = rest.first() == Some(&'^');
    let start = usize::from(negate);
    let close = rest
        .iter()
        .enumerate()
        .skip(start + 1)
        .find(|(_, c)| **c == ']')
        .map(|(i, _)| i)?;
    let members = &rest[start..close];
    let mut items = Vec::new();
    let mut j = 0;
    while j < members.len() {
        if j + 2 < members.len() && members[j + 1] == '-' {
            items.push((members[j], members[j + 2]));
            j += 3;
        } else {
            items.push((members[j], members[j]));
            j += 1;
        }
    }
    Some((Token::Set { negate, items }, close + 1))
}

/// Dynamic programming over (text position, token position): linear in
/// their product, whatever the pattern.
fn matches_tokens(text: &[char], tokens: &[Token]) -> bool {
    // reach[i] = the first i characters can be matched by the tokens so far.
    let mut reach = vec![false; text.len() + 1];
    reach[0] = true;
    for token in tokens {
        let mut next = vec![false; text.len() + 1];
        match token {
            Token::Many => {
                let mut any = false;
                for i in 0..=text.len() {
                    any |= reach[i];
                    next[i] = any;
                }
            }
            _ => {
                for i in 0..text.len() {
                    if reach[i] && one(token, text[i]) {
                        next[i + 1] = true;
                    }
                }
            }
        }
        reach = next;
    }
    reach[text.len()]
}

fn one(token: &Token, c: char) -> bool {
    match token {
        Token::Char(t) => *t == c,
        Token::One => true,
        Token::Set { negate, items } => {
            items.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negate
        }
        Token::Many => unreachable!("handled by the caller"),
    }
}

#[cfg(test)]
mod tests {
    use super::Anchor::{Anywhere, End, Start};
    use super::*;

    #[test]
    fn wildcards_match_as_in_sql_like() {
        assert!(matches("contoso ltd", "oso", Anywhere));
        assert!(matches("contoso ltd", "c_nt", Start));
        assert!(!matches("contoso ltd", "c_nt", End));
        assert!(matches("contoso ltd", "t%d", Anywhere));
        assert!(matches("a1", "a[0-9]", Start));
        assert!(!matches("ab", "a[0-9]", Start));
        assert!(matches("ab", "a[^0-9]", Start));
        assert!(matches("50% off", "50[%]", Start));
        assert!(!matches("50 off", "50[%]", Start));
        assert!(matches("a_b", "a[_]b", Anywhere));
        assert!(!matches("axb", "a[_]b", Anywhere));
        assert!(matches("x[y", "x[[]y", Anywhere));
        // An unclosed bracket is literal.
        assert!(matches("x[y", "x[y", Anywhere));
        assert!(matches("", "%", Anywhere));
        assert!(matches("abc", "c", End));
        assert!(!matches("abc", "a", End));
    }

    #[test]
    fn long_texts_and_patterns_stay_linear() {
        let text = "a".repeat(5000);
        let pattern = format!("{}b", "%a".repeat(200));
        assert!(!matches(&text, &pattern, Anywhere));
    }
}
