//! Fenced code blocks of Markdown files: the docs' snippets are run or parsed by tests.

/// One fenced block: its language tag and body.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    pub lang: String,
    pub body: String,
}

/// Every fenced block, in order.
pub fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut lines = markdown.lines();
    while let Some(line) = lines.next() {
        if let Some(lang) = line.strip_prefix("```") {
            let body: Vec<&str> = lines
                .by_ref()
                .take_while(|l| !l.starts_with("```"))
                .collect();
            out.push(Block {
                lang: lang.trim().to_string(),
                body: body.join("\n"),
            });
        }
    }
    out
}

/// The bodies of the blocks in `lang`.
pub fn blocks_in(markdown: &str, lang: &str) -> Vec<String> {
    blocks(markdown)
        .into_iter()
        .filter(|b| b.lang == lang)
        .map(|b| b.body)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fenced_blocks_with_their_language() {
        let md = "text\n```bash\nmake test\n```\nmore\n```yaml\na: 1\nb: 2\n```\n";
        assert_eq!(blocks_in(md, "bash"), ["make test"]);
        assert_eq!(blocks(md)[1].body, "a: 1\nb: 2");
    }
}
