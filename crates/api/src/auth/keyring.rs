//! Making keys and hashing them: `HMAC-SHA256(pepper, key)`. A key is 256
//! random bits, so a fast keyed hash is enough (no password stretching); the
//! pepper lives only in the api's settings, never in the database.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Every API key starts with this, so a leaked one is recognisable (secret scanners, logs).
pub const KEY_PREFIX: &str = "frk_";
/// Characters of a key shown in listings to tell keys apart: the prefix and 8 hex digits (32 of 256 bits).
const SHOWN: usize = KEY_PREFIX.len() + 8;

pub type KeyHash = [u8; 32];

/// The pepper and the master key's hash.
pub struct Keyring {
    pepper: Vec<u8>,
    master: Option<KeyHash>,
}

/// A fresh key: given to its owner once, stored only as its hash.
pub struct IssuedKey {
    pub key: SecretString,
    pub hash: KeyHash,
    pub shown_prefix: String,
}

impl Keyring {
    /// Without a master key nothing is checked (open mode); the pepper then
    /// only matters for keys made while it runs open, which is none.
    pub fn new(master: Option<&SecretString>, pepper: Option<&SecretString>) -> Self {
        let pepper = match (pepper, master) {
            (Some(p), _) => p.expose_secret().as_bytes().to_vec(),
            (None, Some(m)) => hmac(m.expose_secret().as_bytes(), b"facerec api key pepper v1").to_vec(),
            (None, None) => Vec::new(),
        };
        let mut keyring = Self { pepper, master: None };
        keyring.master = master.map(|m| keyring.hash(m.expose_secret()));
        keyring
    }

    pub fn hash(&self, key: &str) -> KeyHash {
        hmac(&self.pepper, key.as_bytes())
    }

    /// Whether `hash` is the master key's, compared in constant time.
    pub fn is_master(&self, hash: &KeyHash) -> bool {
        self.master.is_some_and(|m| bool::from(m.ct_eq(hash)))
    }

    pub fn issue(&self) -> Result<IssuedKey, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        let key = format!("{KEY_PREFIX}{}", hex::encode(bytes));
        Ok(IssuedKey { hash: self.hash(&key), shown_prefix: key[..SHOWN].to_owned(), key: SecretString::from(key) })
    }
}

fn hmac(secret: &[u8], message: &[u8]) -> KeyHash {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_prefixed_and_hashed_with_the_pepper() {
        let master = SecretString::from("m".repeat(16));
        let ring = Keyring::new(Some(&master), None);
        let (a, b) = (ring.issue().unwrap(), ring.issue().unwrap());
        assert!(a.key.expose_secret().starts_with(KEY_PREFIX) && a.key.expose_secret().len() == 68);
        assert_ne!(a.key.expose_secret(), b.key.expose_secret());
        assert_eq!(ring.hash(a.key.expose_secret()), a.hash);
        assert!(a.key.expose_secret().starts_with(&a.shown_prefix));
        // Another pepper, another hash: the table alone does not verify a key.
        let other = Keyring::new(Some(&master), Some(&SecretString::from("pepper".to_owned())));
        assert_ne!(other.hash(a.key.expose_secret()), a.hash);
        assert!(ring.is_master(&ring.hash(&"m".repeat(16))) && !ring.is_master(&a.hash));
        assert!(!Keyring::new(None, None).is_master(&[0; 32]));
    }
}
