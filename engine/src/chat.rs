//! Text in and out of the model: the tokenizer built from the GGUF's own vocabulary, and the
//! model's own chat template (Jinja, rendered with minijinja).

use crate::EngineError;
use crate::gguf::GgufFile;

use candle_core::quantized::tokenizer::TokenizerFromGguf;
use minijinja::{Environment, context};
use serde::Serialize;
use tokenizers::Tokenizer;

/// One chat message, in the shape chat templates expect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    pub role: &'static str,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: &'static str, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}

/// ChatML, used only when a GGUF carries no template of its own.
const CHATML_TEMPLATE: &str = "{% for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/// End-of-turn markers across the supported model families.
const END_OF_TURN: &[&str] = &["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "</s>"];

/// candle's converter knows the `qwen2` and `llama3` pre-tokenizers and gives every other
/// byte-level vocabulary GPT-2's defaults, including `add_prefix_space`, which inserts a space
/// HF's tokenizers do not (caught by the round-trip tests on SmolLM2). This mirrors llama.cpp's
/// pre-tokenizer table for the vocabularies caro supports.
fn fix_pre_tokenizer(tokenizer: &mut Tokenizer, pre: &str) {
    use tokenizers::pre_tokenizers::{byte_level::ByteLevel, digits::Digits, sequence::Sequence};
    if matches!(pre, "qwen2" | "llama3" | "llama-bpe" | "smaug-bpe" | "lfm2") {
        return;
    }
    let byte_level = ByteLevel::new(false, true, true);
    if pre == "smollm" {
        tokenizer.with_pre_tokenizer(Some(Sequence::new(vec![
            Digits::new(true).into(),
            byte_level.into(),
        ])));
    } else {
        tokenizer.with_pre_tokenizer(Some(byte_level));
    }
}

/// Tokenizer plus chat template of one model.
#[derive(Debug)]
pub struct TextCodec {
    tokenizer: Tokenizer,
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
    /// Tokens that end the assistant's turn.
    pub stop_ids: Vec<u32>,
    /// Whether the template came from the GGUF (false: ChatML fallback).
    pub native_template: bool,
}

impl TextCodec {
    pub fn from_gguf(gguf: &GgufFile) -> Result<Self, EngineError> {
        let mut tokenizer = Tokenizer::from_gguf(&gguf.content)
            .map_err(|e| gguf.corrupt(format!("cannot build the tokenizer: {e}")))?;
        let pre = gguf.string("tokenizer.ggml.pre").unwrap_or_default();
        fix_pre_tokenizer(&mut tokenizer, &pre);
        let token_text = |key: &str| -> Option<String> {
            let id = gguf.usize(key).ok()?;
            tokenizer.id_to_token(u32::try_from(id).ok()?)
        };
        let bos_token = token_text("tokenizer.ggml.bos_token_id").unwrap_or_default();
        let eos_token = token_text("tokenizer.ggml.eos_token_id").unwrap_or_default();
        let mut stop_ids: Vec<u32> = END_OF_TURN
            .iter()
            .filter_map(|t| tokenizer.token_to_id(t))
            .collect();
        if let Ok(eos) = gguf.usize("tokenizer.ggml.eos_token_id") {
            stop_ids.extend(u32::try_from(eos).ok());
        }
        stop_ids.sort_unstable();
        stop_ids.dedup();

        let (source, native_template) = match gguf.string("tokenizer.chat_template") {
            Ok(t) => (t, true),
            Err(_) => {
                tracing::warn!("model has no chat template; using ChatML");
                (CHATML_TEMPLATE.to_owned(), false)
            }
        };
        let mut env = Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        env.add_template_owned("chat", source)
            .map_err(|e| gguf.corrupt(format!("its chat template does not parse: {e}")))?;
        Ok(Self {
            tokenizer,
            env,
            bos_token,
            eos_token,
            stop_ids,
            native_template,
        })
    }

    /// Renders `messages` with the model's template.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, EngineError> {
        let tmpl = self
            .env
            .get_template("chat")
            .map_err(|e| EngineError::Inference(format!("chat template: {e}")))?;
        tmpl.render(context! {
            messages => minijinja::value::Value::from(minijinja::value::Serde(messages)),
            add_generation_prompt => add_generation_prompt,
            bos_token => &self.bos_token,
            eos_token => &self.eos_token,
        })
        .map_err(|e| EngineError::Inference(format!("chat template failed to render: {e}")))
    }

    /// Token ids of `text`. Special tokens written in the text (`<|im_start|>`) map to their ids;
    /// no BOS/EOS is added, since the template writes what the model expects.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, EngineError> {
        self.tokenizer
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| EngineError::Inference(format!("tokenizer: {e}")))
    }

    /// Text of `ids`, without special tokens.
    pub fn decode(&self, ids: &[u32]) -> Result<String, EngineError> {
        self.tokenizer
            .decode(ids, true)
            .map_err(|e| EngineError::Inference(format!("tokenizer: {e}")))
    }

    /// The id of a single token, if the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.tokenizer.token_to_id(token)
    }
}
