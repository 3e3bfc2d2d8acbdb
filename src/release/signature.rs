//! Signatures over `versions.txt`, in the minisign format, so that the stock
//! `minisign` tool can sign and verify a repository too.
//!
//! Verification (every app) uses `minisign-verify`; key generation and
//! signing (publishers, the `sign` feature) use `minisign`.

use std::path::Path;

pub use minisign_verify::PublicKey;
use minisign_verify::Signature;

use crate::error::{Error, Result};

/// The signature file's suffix: `versions.txt.minisig`.
pub const SIGNATURE_SUFFIX: &str = ".minisig";
/// The largest signature file accepted.
pub const MAX_SIGNATURE_BYTES: u64 = 4096;

/// Parses a public key: the two-line `minisign.pub` file, or the bare
/// base64 line.
pub fn parse_public_key(text: &str) -> Result<PublicKey, String> {
    let text = text.trim();
    let decoded = if text.lines().count() >= 2 {
        PublicKey::decode(text)
    } else {
        PublicKey::from_base64(text)
    };
    decoded.map_err(|e| format!("not a minisign public key ({e})"))
}

/// Reads a public key file.
pub fn read_public_key(path: impl AsRef<Path>) -> Result<PublicKey> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(crate::error::io_err("reading", path))?;
    parse_public_key(&text).map_err(|reason| Error::Key {
        path: path.to_owned(),
        reason,
    })
}

/// Checks that `signature` (the text of a `.minisig` file) is a valid
/// signature of `data` by one of `keys`, and returns that key's index.
/// Only prehashed (the stock tool's default) signatures are accepted.
pub fn verify(data: &[u8], signature: &str, keys: &[PublicKey], url: &str) -> Result<usize> {
    let fail = |reason: String| Error::Signature {
        url: url.to_owned(),
        reason,
        source: None,
    };
    let signature = Signature::decode(signature)
        .map_err(|e| fail(format!("the signature file is malformed ({e})")))?;
    let mut last = None;
    for (i, key) in keys.iter().enumerate() {
        match key.verify(data, &signature, false) {
            Ok(()) => return Ok(i),
            Err(e) => last = Some(e),
        }
    }
    Err(fail(match last {
        Some(minisign_verify::Error::UnexpectedKeyId) => {
            "signed by a key this program does not trust".into()
        }
        Some(minisign_verify::Error::UnexpectedAlgorithm) => {
            "a legacy (not prehashed) signature; sign with a current minisign".into()
        }
        Some(_) => "the signature does not match: the manifest was changed after signing".into(),
        None => "no public key to check the signature with".into(),
    }))
}

/// Makes an ed25519 key pair in the minisign format. The secret key is
/// written with mode 0600; existing files are never overwritten. With a
/// password the secret key is encrypted (scrypt), as the stock tool does.
#[cfg(feature = "sign")]
pub fn keygen(secret_key: &Path, public_key: &Path, password: Option<String>) -> Result<()> {
    use std::io::Write;
    let key_err = |path: &Path, reason: String| Error::Key {
        path: path.to_owned(),
        reason,
    };
    for path in [secret_key, public_key] {
        if path.exists() {
            return Err(key_err(
                path,
                "already exists; refusing to overwrite a key".into(),
            ));
        }
    }
    let pair = match &password {
        Some(p) => minisign::KeyPair::generate_encrypted_keypair(Some(p.clone())),
        None => minisign::KeyPair::generate_unencrypted_keypair(),
    }
    .map_err(|e| key_err(secret_key, e.to_string()))?;
    let sk_box = pair
        .sk
        .to_box(None)
        .map_err(|e| key_err(secret_key, e.to_string()))?;
    let pk_box = pair
        .pk
        .to_box()
        .map_err(|e| key_err(public_key, e.to_string()))?;
    let mut file = crate::os::create_private(secret_key)?;
    file.write_all(sk_box.to_string().as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(crate::error::io_err("writing", secret_key))?;
    let mut file = std::fs::File::options()
        .write(true)
        .create_new(true)
        .open(public_key)
        .map_err(crate::error::io_err("creating", public_key))?;
    file.write_all(pk_box.to_string().as_bytes())
        .map_err(crate::error::io_err("writing", public_key))?;
    Ok(())
}

/// Signs `data` with the secret key in `secret_key` (a minisign key file;
/// encrypted ones need `password`) and returns the `.minisig` text.
#[cfg(feature = "sign")]
pub fn sign(
    secret_key: &Path,
    password: Option<String>,
    data: &[u8],
    trusted_comment: &str,
) -> Result<String> {
    let sk = open_secret_key(secret_key, password)?;
    let signature =
        minisign::sign(None, &sk, data, Some(trusted_comment), None).map_err(|e| Error::Key {
            path: secret_key.to_owned(),
            reason: format!("signing failed ({e})"),
        })?;
    Ok(signature.into_string())
}

/// The public key of the secret key in `secret_key`.
#[cfg(feature = "sign")]
pub fn public_key_of(secret_key: &Path, password: Option<String>) -> Result<PublicKey> {
    let sk = open_secret_key(secret_key, password)?;
    let key_err = |reason: String| Error::Key {
        path: secret_key.to_owned(),
        reason,
    };
    let pk = minisign::PublicKey::from_secret_key(&sk)
        .map_err(|e| key_err(format!("no public key for it ({e})")))?;
    PublicKey::from_base64(&pk.to_base64()).map_err(|e| key_err(format!("its public key ({e})")))
}

#[cfg(feature = "sign")]
fn open_secret_key(secret_key: &Path, password: Option<String>) -> Result<minisign::SecretKey> {
    let key_err = |reason: String| Error::Key {
        path: secret_key.to_owned(),
        reason,
    };
    let text =
        std::fs::read_to_string(secret_key).map_err(crate::error::io_err("reading", secret_key))?;
    let sk_box = minisign::SecretKeyBox::from_string(&text)
        .map_err(|e| key_err(format!("not a minisign secret key ({e})")))?;
    match password {
        Some(p) => sk_box.into_secret_key(Some(p)),
        None => sk_box.into_unencrypted_secret_key(),
    }
    .map_err(|e| {
        key_err(format!(
            "cannot open the secret key ({e}); an encrypted key needs its password in LEAPFROG_SECRET_KEY_PASSWORD"
        ))
    })
}
