//! Tests of the envelope seal: the HMAC over the exact bytes, rotation between two secrets, and
//! tampered, unsigned and wrongly signed payloads.

use super::*;

const SECRET: &[u8] = b"0123456789abcdef-current";
const OLD: &[u8] = b"0123456789abcdef-previous";

fn keys(current: Option<&[u8]>, previous: Option<&[u8]>, sealed_only: bool) -> Keys {
    let secrets = BackplaneSecrets { current: current.map(<[u8]>::to_vec), previous: previous.map(<[u8]>::to_vec) };
    Keys::new(&secrets, sealed_only).unwrap()
}

#[test]
fn the_mac_is_hmac_sha256() {
    // RFC 4231, test case 1.
    let mut mac = key(&[0x0b; 20], "current").unwrap();
    mac.update(b"Hi There");
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
}

#[test]
fn a_sealed_payload_is_one_json_object_and_opens_to_the_original_bytes() {
    let payload = br#"{"v":2,"origin":"a","event":{"type":"typing"}}"#;
    let k = keys(Some(SECRET), None, true);
    let sealed = k.seal(payload).into_owned();
    let json: serde_json::Value = serde_json::from_slice(&sealed).unwrap();
    assert_eq!(json["v"], 2);
    assert_eq!(json["mac"].as_str().unwrap().len(), 64);
    let (body, seal) = k.open(&sealed).unwrap();
    assert_eq!((&*body, seal), (&payload[..], Seal::Verified));
    // A node without a secret reads it unchecked; one with another secret refuses it.
    let (body, seal) = keys(None, None, false).open(&sealed).unwrap();
    assert_eq!((&*body, seal), (&payload[..], Seal::Unchecked));
    assert_eq!(keys(Some(b"another secret, long enough"), None, false).open(&sealed), Err(Refused::BadMac));
}

#[test]
fn rotation_accepts_the_previous_secret_and_seals_with_the_current() {
    let payload = br#"{"inbox":1,"origin":"a"}"#;
    let old_node = keys(Some(OLD), None, true);
    let new_node = keys(Some(SECRET), Some(OLD), true);
    let newer_node = keys(Some(SECRET), None, true);
    let from_old = old_node.seal(payload).into_owned();
    let from_new = new_node.seal(payload).into_owned();
    assert_eq!(new_node.open(&from_old).unwrap().1, Seal::Verified);
    assert_eq!(new_node.open(&from_new).unwrap().1, Seal::Verified);
    assert_eq!(newer_node.open(&from_new).unwrap().1, Seal::Verified);
    assert_eq!(newer_node.open(&from_old), Err(Refused::BadMac), "the previous secret is gone");
    assert_eq!(old_node.open(&from_new), Err(Refused::BadMac));
    assert_eq!(from_new, newer_node.seal(payload).into_owned(), "sealed with the current secret");
}

#[test]
fn tampered_truncated_and_unsealed_payloads_are_refused() {
    let payload = br#"{"v":3,"origin":"a","seq":7}"#;
    let k = keys(Some(SECRET), None, true);
    let sealed = k.seal(payload).into_owned();
    let text = String::from_utf8(sealed.clone()).unwrap();
    let tampered = text.replace("\"seq\":7", "\"seq\":8");
    let mut flipped = sealed.clone();
    flipped[HEAD.len()] = if flipped[HEAD.len()] == b'0' { b'1' } else { b'0' };
    let upper = text.replacen(&text[8..72], &text[8..72].to_uppercase(), 1);
    for bad in [tampered.as_bytes(), &flipped, &sealed[..PREFIX - 1], upper.as_bytes(), br#"{"mac":"00","v":3}"#] {
        assert_eq!(k.open(bad), Err(Refused::BadMac), "{}", String::from_utf8_lossy(bad));
    }
    assert_eq!(k.open(payload), Err(Refused::Unsigned));
    let lenient = keys(Some(SECRET), None, false);
    assert_eq!(lenient.open(payload).unwrap().1, Seal::None);
    assert_eq!(lenient.open(tampered.as_bytes()), Err(Refused::BadMac), "a seal present is always checked");
    // Without a secret there is nothing to refuse unsealed payloads with.
    assert_eq!(keys(None, None, true).open(payload).unwrap().1, Seal::None);
}

#[test]
fn secrets_are_checked_and_never_shown() {
    let short = BackplaneSecrets { current: Some(b"short".to_vec()), previous: None };
    assert_eq!(Keys::new(&short, false).unwrap_err(), KeyError::Short("current"));
    let previous_only = BackplaneSecrets { current: None, previous: Some(OLD.to_vec()) };
    assert_eq!(Keys::new(&previous_only, false).unwrap_err(), KeyError::PreviousOnly);
    let both = BackplaneSecrets { current: Some(SECRET.to_vec()), previous: Some(OLD.to_vec()) };
    let shown = format!("{both:?} {:?}", Keys::new(&both, true).unwrap());
    assert!(!shown.contains("0123456789abcdef"), "{shown}");
    assert!(!keys(None, None, false).seals());
    let unsealed = br#"{}"#;
    assert_eq!(&*keys(Some(SECRET), None, false).seal(unsealed), &unsealed[..], "nothing to put a key before");
}
