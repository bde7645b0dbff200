"""Text encoders over token inputs (2 x L int64: token ids and attention mask, as the image-text
datasets give them).

- `bert`: a Hugging Face BertModel read from a local folder (igm_core.hf), without its pooling
  layer; the output is the [CLS] vector of the last hidden state (hidden_size, 768 for BERT-base),
  as in the IGM authors' model. Each batch runs on the columns up to its longest caption (the
  authors pad each batch to its longest caption). BERT's dropout draws from a generator seeded by
  the encoder's own counter of training forwards, a buffer saved with the weights, so a run
  stopped and resumed repeats the same dropout masks.
- `token_bag`: the mean of learned token embeddings (ids folded into `buckets` rows), then
  Linear-ReLU to out_dim. Needs no weights and runs fast on a CPU: the default text encoder.
"""

from __future__ import annotations

import torch
from torch import nn

from igm_core.encoder_check import check_input


def _check_tokens(name: str, in_shape: tuple[int, ...]) -> int:
    check_input(name, tuple(in_shape))
    return in_shape[1]


class BertEncoder(nn.Module):
    """BERT's [CLS] vector of the last hidden state."""

    def __init__(self, in_shape: tuple[int, ...], pretrained: str) -> None:
        super().__init__()
        length = _check_tokens("bert", in_shape)
        from igm_core import hf

        self.bert = hf.load_bert(pretrained)
        config = self.bert.config
        if length > config.max_position_embeddings:
            raise ValueError(
                f"{pretrained}: the model takes at most {config.max_position_embeddings} tokens, "
                f"the data has {length} (max_tokens)"
            )
        self.source = str(pretrained)
        self.vocab_size = int(config.vocab_size)
        self.out_dim = int(config.hidden_size)
        # drawn from the generator the trainer seeds: one dropout stream per run seed
        self.register_buffer("dropout_seed", torch.randint(2**62, ()), persistent=True)
        self.register_buffer("forwards", torch.zeros((), dtype=torch.long), persistent=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids, mask = x[:, 0], x[:, 1]
        if self.training:
            self.forwards.add_(1)
        # one device-to-host copy: the batch's longest caption, its largest id, the counter
        longest, top, count, seed = torch.stack(
            [mask.sum(1).max(), ids.max(), self.forwards, self.dropout_seed]
        ).tolist()
        if top >= self.vocab_size:
            raise ValueError(
                f"token id {top} is outside the vocabulary of the BERT model at {self.source} "
                f"({self.vocab_size} ids): the dataset's tokenizer is not this model's"
            )
        n = max(1, int(longest))
        ids, mask = ids[:, :n], mask[:, :n]
        if not self.training:
            return self.bert(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0]
        devices = [ids.device] if ids.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed((seed + count) % 2**63)
            return self.bert(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0]


class TokenBagEncoder(nn.Module):
    """Mean of token embeddings over the caption's tokens, then Linear-ReLU."""

    def __init__(self, in_shape: tuple[int, ...], buckets: int, dim: int, out_dim: int) -> None:
        super().__init__()
        _check_tokens("token_bag", in_shape)
        self.buckets = buckets
        self.embed = nn.Embedding(buckets, dim)
        self.fc = nn.Linear(dim, out_dim)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids, mask = x[:, 0] % self.buckets, x[:, 1].to(self.fc.weight.dtype)
        total = (self.embed(ids) * mask.unsqueeze(-1)).sum(1)
        mean = total / mask.sum(1, keepdim=True).clamp_min(1.0)
        return torch.relu(self.fc(mean))
