//! Every generated guest file comes from a tera template under templates/drivers/, embedded in
//! the binary so revirt runs from anywhere.
use include_dir::{include_dir, Dir};
use std::sync::OnceLock;

static DIR: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/templates/drivers");

fn engine() -> &'static tera::Tera {
    static T: OnceLock<tera::Tera> = OnceLock::new();
    T.get_or_init(|| {
        let mut t = tera::Tera::default();
        t.autoescape_on(vec![]);
        let mut files = vec![];
        collect(&DIR, &mut files);
        t.add_raw_templates(files)
            .expect("templates/drivers: template syntax error (caught by tests)");
        t
    })
}

fn collect(d: &'static Dir<'static>, out: &mut Vec<(String, &'static str)>) {
    for f in d.files() {
        if let Some(s) = f.contents_utf8() {
            out.push((f.path().to_string_lossy().into_owned(), s));
        }
    }
    for sub in d.dirs() {
        collect(sub, out);
    }
}

/// Renders `templates/drivers/<name>` with `ctx`.
pub fn render(name: &str, ctx: &tera::Context) -> Result<String, tera::Error> {
    engine().render(name, ctx)
}

/// Names of all embedded templates.
pub fn names() -> Vec<String> {
    engine().get_template_names().map(String::from).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn all_templates_parse_and_exist() {
        let n = super::names();
        assert!(!n.is_empty());
    }
}
