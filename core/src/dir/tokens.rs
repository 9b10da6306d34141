//! A tokenizer for Tor's directory meta-format (dir-spec §1.2): documents are lines
//! `Keyword Arg Arg ...`, each optionally followed by one object
//! `-----BEGIN LABEL-----` / base64 lines / `-----END LABEL-----`.
//!
//! The tokenizer only splits; each document parser says which keywords it wants. It never
//! panics, and it bounds line length and object size so a hostile document cannot make
//! it allocate without limit.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use super::encoding::base64_decode;

/// The longest line accepted (a consensus `params` or `pr` line is a few hundred bytes).
pub const MAX_LINE_LEN: usize = 16 * 1024;
/// The largest object accepted, base64 text included (an RSA-8192 key is ~1.5 KiB).
pub const MAX_OBJECT_LEN: usize = 16 * 1024;

/// Why a directory document was refused, and on which line (1-based; 0 when the
/// document as a whole is at fault).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The line at fault, counting from 1; 0 for the document as a whole.
    pub line: usize,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl ParseError {
    /// An error about line `line`.
    pub const fn at(line: usize, reason: &'static str) -> ParseError {
        ParseError { line, reason }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "directory document: {}", self.reason)
        } else {
            write!(f, "directory document line {}: {}", self.line, self.reason)
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ParseError {}

/// The object that follows an item: its label (`RSA PUBLIC KEY`, `SIGNATURE`, ...) and
/// its decoded bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object<'a> {
    /// The label between `-----BEGIN ` and `-----`.
    pub label: &'a str,
    /// The base64-decoded body.
    pub data: Vec<u8>,
}

/// One item: a keyword line and its optional object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item<'a> {
    /// The line the keyword is on (1-based).
    pub line: usize,
    /// Byte offset of the item's first byte in the document.
    pub start: usize,
    /// Byte offset just past the item (past its object's END line, newline included).
    pub end: usize,
    /// The keyword.
    pub keyword: &'a str,
    /// Everything after the keyword and its separating whitespace, verbatim.
    pub args_text: &'a str,
    /// The object, if one follows.
    pub object: Option<Object<'a>>,
}

impl<'a> Item<'a> {
    /// The whitespace-separated arguments.
    pub fn args(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        self.args_text.split([' ', '\t']).filter(|a| !a.is_empty())
    }

    /// Argument `i` (0-based), or an error naming this line.
    pub fn arg(&self, i: usize, reason: &'static str) -> Result<&'a str, ParseError> {
        self.args().nth(i).ok_or(ParseError::at(self.line, reason))
    }

    /// An error about this item's line.
    pub fn err(&self, reason: &'static str) -> ParseError {
        ParseError::at(self.line, reason)
    }

    /// The object with label `label`, or an error naming this line.
    pub fn object_labelled(&self, labels: &[&str]) -> Result<&[u8], ParseError> {
        match &self.object {
            Some(o) if labels.contains(&o.label) => Ok(&o.data),
            Some(_) => Err(self.err("object has the wrong label")),
            None => Err(self.err("object missing")),
        }
    }
}

/// Splits a document into [`Item`]s. Yields at most one error, then stops.
#[derive(Debug, Clone)]
pub struct Tokenizer<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
    failed: bool,
}

impl<'a> Tokenizer<'a> {
    /// A tokenizer over `text`, whose first line is line 1.
    pub fn new(text: &'a str) -> Self {
        Tokenizer {
            text,
            pos: 0,
            line: 1,
            failed: false,
        }
    }

    /// Checks `doc` is UTF-8 (directory documents are ASCII save for free-form
    /// fields such as `contact`) and tokenizes it.
    pub fn from_bytes(doc: &'a [u8]) -> Result<Self, ParseError> {
        core::str::from_utf8(doc)
            .map(Tokenizer::new)
            .map_err(|_| ParseError::at(0, "not UTF-8"))
    }

    /// The next line (without its newline) and the offset past the newline.
    fn next_line(&self, from: usize) -> Result<Option<(&'a str, usize)>, ParseError> {
        let rest = match self.text.get(from..) {
            Some(r) if !r.is_empty() => r,
            _ => return Ok(None),
        };
        let line_no = self.line;
        match rest.find('\n') {
            Some(n) if n > MAX_LINE_LEN => Err(ParseError::at(line_no, "line too long")),
            Some(n) => Ok(Some((rest.get(..n).unwrap_or(""), from + n + 1))),
            None if rest.len() > MAX_LINE_LEN => Err(ParseError::at(line_no, "line too long")),
            None => Err(ParseError::at(line_no, "last line has no newline")),
        }
    }

    fn parse_item(&mut self) -> Result<Option<Item<'a>>, ParseError> {
        let start = self.pos;
        let Some((line, after)) = self.next_line(start)? else {
            return Ok(None);
        };
        let item_line = self.line;
        let (keyword, args_text) = match line.find([' ', '\t']) {
            Some(i) => (
                line.get(..i).unwrap_or(""),
                line.get(i..).unwrap_or("").trim_start_matches([' ', '\t']),
            ),
            None => (line, ""),
        };
        let keyword_ok = !keyword.is_empty()
            && keyword
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !keyword.starts_with('-');
        if !keyword_ok {
            return Err(ParseError::at(item_line, "bad keyword"));
        }
        self.pos = after;
        self.line += 1;
        let mut item = Item {
            line: item_line,
            start,
            end: after,
            keyword,
            args_text,
            object: None,
        };

        // An object follows if the next line begins one.
        let Some((begin, mut cursor)) = self.next_line(self.pos)? else {
            return Ok(Some(item));
        };
        let Some(label) = begin
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            return Ok(Some(item));
        };
        let begin_line = self.line;
        self.line += 1;
        let mut b64 = String::new();
        loop {
            let Some((l, next)) = self.next_line(cursor)? else {
                return Err(ParseError::at(begin_line, "object not terminated"));
            };
            cursor = next;
            self.line += 1;
            if let Some(end_label) = l
                .strip_prefix("-----END ")
                .and_then(|l| l.strip_suffix("-----"))
            {
                if end_label != label {
                    return Err(ParseError::at(
                        self.line - 1,
                        "object END label differs from BEGIN",
                    ));
                }
                break;
            }
            if b64.len() + l.len() > MAX_OBJECT_LEN {
                return Err(ParseError::at(begin_line, "object too large"));
            }
            b64.push_str(l);
        }
        let data = base64_decode(&b64).ok_or(ParseError::at(begin_line, "object is not base64"))?;
        self.pos = cursor;
        item.end = cursor;
        item.object = Some(Object { label, data });
        Ok(Some(item))
    }
}

impl<'a> Iterator for Tokenizer<'a> {
    type Item = Result<Item<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.parse_item() {
            Ok(Some(item)) => Some(Ok(item)),
            Ok(None) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Splits a concatenation of documents (`/tor/keys/all`, a microdescriptor batch) at
/// every line that starts with `keyword` followed by whitespace or end of line. Text
/// before the first such line is returned as its own (leading) piece only if non-empty.
pub fn split_at_keyword<'a>(text: &'a str, keyword: &str) -> Vec<&'a str> {
    let mut starts = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix(keyword)
            && (rest.is_empty() || rest.starts_with([' ', '\t', '\n', '\r']))
        {
            starts.push(offset);
        }
        offset += line.len();
    }
    let mut pieces = Vec::with_capacity(starts.len() + 1);
    let mut prev = 0;
    for &s in &starts {
        if s > prev {
            pieces.push(text.get(prev..s).unwrap_or(""));
        }
        prev = s;
    }
    if prev < text.len() {
        pieces.push(text.get(prev..).unwrap_or(""));
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_items_and_objects() {
        let doc = "alpha 1 2\tthree\nbeta\nkey\n-----BEGIN THING-----\naGVs\nbG8=\n-----END THING-----\nlast x\n";
        let items: Vec<Item<'_>> = Tokenizer::new(doc).collect::<Result<_, _>>().unwrap();
        assert_eq!(items.len(), 4);
        assert_eq!(items[0].keyword, "alpha");
        assert_eq!(items[0].args().collect::<Vec<_>>(), ["1", "2", "three"]);
        assert_eq!(items[1].keyword, "beta");
        assert_eq!(items[1].args().count(), 0);
        let obj = items[2].object.as_ref().unwrap();
        assert_eq!((obj.label, &obj.data[..]), ("THING", &b"hello"[..]));
        assert_eq!(items[2].end, items[3].start);
        assert_eq!(items[3].line, 8);
        assert_eq!(&doc[items[3].start..items[3].end], "last x\n");
    }

    #[test]
    fn reports_the_bad_line() {
        let bad = |doc: &str| Tokenizer::new(doc).find_map(Result::err).unwrap();
        assert_eq!(bad("a\nb\n-----BEGIN X-----\nAA==\n").line, 3);
        assert_eq!(
            bad("a\nb\n-----BEGIN X-----\nAA==\n-----END Y-----\n").line,
            5
        );
        assert_eq!(bad("a\n\n").reason, "bad keyword");
        assert_eq!(bad("a\nb").reason, "last line has no newline");
        assert_eq!(
            bad("a\nk\n-----BEGIN X-----\n!!\n-----END X-----\n").reason,
            "object is not base64"
        );
    }

    #[test]
    fn splits_concatenations() {
        let t = "x\nonion-key\na\nonion-keyish\nonion-key\nb\n";
        assert_eq!(
            split_at_keyword(t, "onion-key"),
            ["x\n", "onion-key\na\nonion-keyish\n", "onion-key\nb\n"]
        );
        assert!(split_at_keyword("", "k").is_empty());
    }

    #[test]
    fn never_panics() {
        bolero::check!().for_each(|input: &[u8]| {
            if let Ok(t) = Tokenizer::from_bytes(input) {
                for item in t.flatten() {
                    let _ = item.args().count();
                }
            }
            if let Ok(s) = core::str::from_utf8(input) {
                let _ = split_at_keyword(s, "onion-key");
            }
        });
    }
}
