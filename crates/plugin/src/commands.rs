//! The commands: read watches from the cluster, render them ([`crate::render`]), print.

use std::io::{IsTerminal, Write};

use kube::Api;
use kube::api::ListParams;
use personalize_watch_api::crd::SolutionVersionWatch;

use crate::cli::{Output, Print, Target};
use crate::client::{ClientError, connect};
use crate::render::object::{EncodeError, Format};
use crate::render::{Table, jobs, list, object};

/// Why a command failed; printed as kubectl prints its errors.
#[derive(thiserror::Error, Debug)]
pub enum CommandError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("cannot read solutionversionwatch {name:?}: {source}")]
    Read {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot list solutionversionwatches: {0}")]
    List(#[source] kube::Error),
    #[error(
        "solutionversionwatches.personalize-watch.dev {name:?} not found in namespace {namespace:?}"
    )]
    NotFound { name: String, namespace: String },
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// `jobs NAME`.
pub async fn jobs(name: &str, target: &Target, print: Print) -> Result<String, CommandError> {
    let (client, namespace) = connect(target).await?;
    let api: Api<SolutionVersionWatch> = Api::namespaced(client, &namespace);
    let watch = api
        .get_opt(name)
        .await
        .map_err(|source| CommandError::Read {
            name: name.to_string(),
            source,
        })?
        .ok_or_else(|| CommandError::NotFound {
            name: name.to_string(),
            namespace,
        })?;
    Ok(match format(print) {
        Some(format) => object::one(&watch, format)?,
        None => jobs::render(
            &watch,
            jiff::Timestamp::now(),
            table(print),
            print.output == Some(Output::Wide),
        ),
    })
}

/// `list`, of the namespace or (all) of every namespace, matching `selector`.
pub async fn list(
    all: bool,
    selector: Option<&str>,
    target: &Target,
    print: Print,
) -> Result<String, CommandError> {
    let (client, namespace) = connect(target).await?;
    let api: Api<SolutionVersionWatch> = if all {
        Api::all(client)
    } else {
        Api::namespaced(client, &namespace)
    };
    let params = selector.map_or_else(ListParams::default, |s| ListParams::default().labels(s));
    let mut watches = api.list(&params).await.map_err(CommandError::List)?.items;
    watches.sort_by(|a, b| {
        (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name))
    });
    if let Some(format) = format(print) {
        return Ok(object::list(&watches, format)?);
    }
    if watches.is_empty() {
        // On stderr, as kubectl: a script reading stdout sees no rows.
        eprintln!(
            "{}",
            list::nothing_found((!all).then_some(namespace.as_str()))
        );
        return Ok(String::new());
    }
    let columns = list::Columns {
        namespace: all,
        wide: print.output == Some(Output::Wide),
    };
    Ok(list::render(
        &watches,
        jiff::Timestamp::now(),
        table(print),
        columns,
    ))
}

fn format(print: Print) -> Option<Format> {
    match print.output {
        Some(Output::Json) => Some(Format::Json),
        Some(Output::Yaml) => Some(Format::Yaml),
        Some(Output::Wide) | None => None,
    }
}

fn table(print: Print) -> Table {
    Table {
        width: terminal_width(),
        headers: !print.no_headers,
    }
}

/// Columns to fit: COLUMNS, else the terminal's width; None (no cut) when piped.
fn terminal_width() -> Option<usize> {
    if let Some(n) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
        return Some(n);
    }
    if !std::io::stdout().is_terminal() {
        return None;
    }
    terminal_size::terminal_size().map(|(w, _)| usize::from(w.0))
}

/// Prints `text`; a closed pipe (`| head`) is not an error worth a message.
pub fn print(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}
