//! The Prometheus text format, read the way tests need it: one value per series, or the sum of
//! a family.

/// Samples of one scrape.
pub struct Scrape {
    text: String,
}

impl Scrape {
    pub fn parse(text: impl Into<String>) -> Self {
        Scrape { text: text.into() }
    }

    /// (series, value) of every sample line; comments skipped.
    fn samples(&self) -> impl Iterator<Item = (&str, f64)> {
        self.text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                Some((series, value.parse().ok()?))
            })
    }

    /// The value of one series, written exactly as exposed (`name{label="v",...}`).
    pub fn value(&self, series: &str) -> Option<f64> {
        self.samples().find(|(s, _)| *s == series).map(|(_, v)| v)
    }

    /// The sum of every sample of a family (`name` or `name{...}`).
    pub fn sum(&self, name: &str) -> f64 {
        self.samples()
            .filter(|(s, _)| *s == name || s.strip_prefix(name).is_some_and(|r| r.starts_with('{')))
            .map(|(_, v)| v)
            .sum()
    }

    /// Whether a family has any sample.
    pub fn has(&self, name: &str) -> bool {
        self.samples().any(|(s, _)| {
            s == name || s.starts_with(&format!("{name}{{")) || s.starts_with(&format!("{name}_"))
        })
    }

    pub fn text(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_sums() {
        let scrape = Scrape::parse(
            "# HELP x_total X\n# TYPE x_total counter\nx_total{a=\"1\"} 2\nx_total{a=\"2\"} 3.5\ny 7\n",
        );
        assert_eq!(scrape.value("x_total{a=\"2\"}"), Some(3.5));
        assert_eq!(scrape.sum("x_total"), 5.5);
        assert_eq!(scrape.value("y"), Some(7.0));
        assert_eq!(scrape.sum("x"), 0.0);
        assert!(scrape.has("y") && !scrape.has("z"));
    }
}
