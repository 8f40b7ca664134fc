//! `cdvm submit --input`: inline when the file fits one encrypted event, else (and always for a
//! folder) an encrypted blob on Blossom servers (docs/protocol.md §5.8).

use std::path::Path;
use std::time::Duration;

use cdvm_client::blob::{self, Source};
use cdvm_client::rag::RagRequest;
use cdvm_client::{discover, ClientError};
use cdvm_protocol::nostr::{Keys, PublicKey};
use cdvm_protocol::{kinds, ConfidentialInput, Data, InputBody, MAX_INPUT_PLAINTEXT};

use crate::show;

/// The input's data and the servers a large result may go to.
pub struct Prepared {
    pub data: Data,
    pub servers: Vec<String>,
}

/// Whether `text` fits inline: the input's JSON (with a placeholder request id) within
/// [`MAX_INPUT_PLAINTEXT`]. Escaping can make JSON larger than the text, so measure it.
fn fits_inline(kind: u16, text: &str) -> bool {
    let data = Data::Inline(text.to_owned());
    let body = match kind {
        kinds::SQL => InputBody::Sql {
            table_csv: data,
            query: String::new(),
        },
        _ => InputBody::TextStats { text: data },
    };
    let probe = ConfidentialInput {
        v: 1,
        request_id: "0".repeat(64),
        body,
        blossom: vec![],
    };
    // The query is added later; keep 4 KiB of room for it.
    serde_json::to_vec(&probe)
        .map(|j| j.len() + 4096 <= MAX_INPUT_PLAINTEXT)
        .unwrap_or(false)
}

fn file_type(kind: u16, source: &Source) -> &'static str {
    match source {
        Source::Folder(_) => blob::TAR,
        Source::File(path) if kind == kinds::SQL => {
            let _ = path;
            "text/csv"
        }
        Source::File(path) => match path.extension().and_then(|e| e.to_str()) {
            Some("md" | "markdown") => "text/markdown",
            _ => "text/plain",
        },
    }
}

#[allow(clippy::too_many_arguments)] // the submit flags it needs, each named once
pub async fn prepare(
    relays: &[String],
    dvm: &PublicKey,
    user: &Keys,
    kind: u16,
    path: &Path,
    flags: &[String],
    own_key: bool,
    rag: Option<&RagRequest>,
) -> Result<Prepared, ClientError> {
    let source = Source::from_path(path)?;
    let io = |source| ClientError::Io {
        path: path.display().to_string(),
        source,
    };
    let size = match &source {
        Source::File(p) => Some(std::fs::metadata(p).map_err(io)?.len()),
        Source::Folder(_) => None,
    };
    if let Some(size) = size.filter(|&s| s <= MAX_INPUT_PLAINTEXT as u64) {
        let text = std::fs::read_to_string(path).map_err(io)?;
        let fits = match rag {
            Some(rag) => rag.fits_inline(&text, flags),
            None => fits_inline(kind, &text),
        };
        if fits {
            return Ok(Prepared {
                data: Data::Inline(text),
                servers: flags.to_vec(),
            });
        }
        let _ = size;
    }

    // A blob: find the DVM's cap and a server.
    let client = nostr_sdk::Client::new(Keys::generate());
    for relay in relays {
        client
            .add_relay(relay.as_str())
            .await
            .map_err(|e| ClientError::Relay(format!("{relay}: {e}")))?;
    }
    client.connect().await;
    client.wait_for_connection(Duration::from_secs(10)).await;
    let announcement = discover::announcement(&client, dvm).await;
    let mut servers = flags.to_vec();
    let mut from = "--blossom";
    if servers.is_empty() && own_key {
        servers = discover::user_servers(&client, &user.public_key()).await;
        from = "your kind-10063 server list";
    }
    if servers.is_empty() {
        if let Some(a) = &announcement {
            servers = a.blossom.clone();
            from = "the DVM's announcement";
        }
    }
    client.shutdown().await;
    if servers.is_empty() {
        return Err(match (&source, size) {
            (Source::File(_), Some(size)) => ClientError::InputTooLarge {
                size: usize::try_from(size).unwrap_or(usize::MAX),
                max: MAX_INPUT_PLAINTEXT,
            },
            _ => ClientError::Usage(format!(
                "--input {} is a folder, which goes as an encrypted blob: give --blossom URL",
                path.display()
            )),
        });
    }
    let max = announcement
        .as_ref()
        .map(|a| a.max_input_for(kind))
        .unwrap_or(cdvm_protocol::DEFAULT_MAX_INPUT_BYTES);
    if let Some(size) = size.filter(|&s| s > max) {
        return Err(ClientError::InputOverCap { size, max });
    }
    let urls = blob::parse_servers(&servers)?;
    let kind_type = match rag {
        Some(rag) => rag.file_type(),
        None => file_type(kind, &source),
    };
    eprintln!(
        "input {} is sent as an encrypted blob ({kind_type}) through {} Blossom server(s) from {from}",
        path.display(),
        urls.len()
    );
    let blossom = blob::client()?;
    let reference = blob::upload_input(
        &blossom,
        &source,
        kind_type,
        &urls,
        user,
        max,
        &show::transfer,
    )
    .await?;
    show::transfer_done();
    eprintln!(
        "            uploaded {} bytes of ciphertext (sha256 {}…); the key goes only to the attested guest",
        reference.size,
        &reference.x[..16]
    );
    Ok(Prepared {
        data: Data::Blob(reference),
        servers,
    })
}
