"""The cached training step: innerpissa.PairRunner's passes with the same loss and gradients (tested), cheaper.

A training step runs every pair's two rows at c = 0 and c = ±1. Rows that begin alike (the two persona chats, or
a dilemma prompt answered two ways) need not run that beginning once per row: it runs once per coefficient,
and each row continues from its key/value cache. With whole-row loss windows a row's window also reads the
predictions its beginning makes; those are kept from that one pass. On the authors' layout this runs ~3× fewer
token positions through the blocks than the plain step (docs/benchmark.md).

Copy it with innerpissa.py (it imports only that, torch, numpy and transformers).

Usage: innerpissa.train(model, tokenizer, adapter, pairs, cfg, runner_type=CachedPairRunner)
"""
import numpy as np
import torch
from transformers import DynamicCache

from innerpissa import PairRunner, common_prefix, interleave, token_ids, wide, window_of


class CachedPairRunner(PairRunner):
    """innerpissa.PairRunner's passes with the same numbers (tested), cheaper: what several rows share at
    their start runs once per coefficient, and each row's own tokens continue from that key/value cache.
    The rows are grouped by the start they share, chosen once from all the pairs by which runs fewer tokens:
    - sides (persona pairs): the honest and the dishonest persona chat, each the same in every pair (their
      pass at c = 0 is kept for the run);
    - pairs (pairs whose two rows begin alike, e.g. a dilemma answered two ways): each pair's own prompt.
    Two forwards: the starts packed into one row (what all of them share once, then each start's rest),
    then one row per start [G, W] holding its rows end to end, each row seeing its start and its own
    earlier tokens (4-D masks, no padding between rows). A start ends `last_n` tokens before its rows
    part, so the loss block is read on the rows' own tokens. If no start is shared beyond that, the
    plain batch runs."""

    def __init__(self, model, tokenizer, adapter, pairs, layer, last_n):
        super().__init__(model, tokenizer, adapter, pairs, layer, last_n)
        ids = [token_ids(tokenizer, t) for t in interleave(pairs)]
        self.k = min(common_prefix(ids[0::2]), common_prefix(ids[1::2])) - last_n  # both chats cut to k tokens
        own = [common_prefix(ids[i:i + 2]) - last_n for i in range(0, len(ids), 2)]  # each pair's own start
        root = min(common_prefix(ids), *own)                                          # what all starts share
        by_pair = sum(len(x) - own[r // 2] for r, x in enumerate(ids)) + sum(n - root for n in own)
        self.per_pair = min(own) > 0 and by_pair < sum(len(x) - self.k for x in ids)   # tokens run either way
        self.cached = self.per_pair or self.k > 0
        self.prefix, self.ref, self.windows = [ids[0][:self.k], ids[1][:self.k]], None, None

    def run(self, pairs, c, lengths=None):
        """PairRunner.run; `batch` reads the loss windows (how far back each row's reaches) from self.windows."""
        self.windows = lengths
        try:
            return super().run(pairs, c, lengths)
        finally:
            self.windows = None

    def starts(self, ids):
        """(the shared start each row continues from [rows], the starts' token lists [G])."""
        if not self.per_pair:
            return [r % 2 for r in range(len(ids))], self.prefix
        return ([r // 2 for r in range(len(ids))],
                [ids[i][:common_prefix(ids[i:i + 2]) - self.last_n] for i in range(0, len(ids), 2)])

    def mask(self, sees, dtype):
        """An additive attention mask [rows, 1, queries, keys] from sees [rows, queries, keys]."""
        mask = torch.zeros(sees.shape, dtype=dtype, device=self.device)
        return mask.masked_fill(~sees, torch.finfo(dtype).min)[:, None]

    def prefix_kv(self, c, tokens, seg, pos, at, reach):
        """[(keys, values)] per layer, [1, heads, L, head_dim], of the starts packed into one row at c (`tokens`
        [L]; each position's start `seg`, −1 for the part all share; its position in that start `pos`): a
        position sees the shared part and its own start, causally. The logits of each start's last reach[g]
        positions (`at[g]`: where start g's positions lie in the row), [Σ reach, vocab] in start order, are
        kept in self.chat_logits for `with_chat`. The persona chats' pass at c = 0 is kept for the run."""
        if c == 0 and self.ref is not None:
            kv, self.chat_logits = self.ref
            return kv
        sees = (pos[None] <= pos[:, None]) & ((seg[None] == -1) | (seg[None] == seg[:, None]))     # [L, L]
        keep = torch.tensor([i for g, n in enumerate(reach) for i in at[g][len(at[g]) - n:]], dtype=torch.long,
                            device=self.device)
        head = self.model.get_output_embeddings().register_forward_pre_hook(
            lambda module, args: (args[0].flatten(0, 1)[keep][None],))           # [1, Σ reach, d_model]
        dtype = next(p for p in self.model.parameters() if p.is_floating_point()).dtype
        try:
            with self.steer(c), torch.set_grad_enabled(torch.is_grad_enabled() and c != 0):
                out = self.model(input_ids=tokens[None], attention_mask=self.mask(sees[None], dtype),
                                 position_ids=pos[None], use_cache=True)
        finally:
            head.remove()
        kv, self.chat_logits = [(layer.keys, layer.values) for layer in out.past_key_values.layers], wide(out.logits[0])
        if c == 0 and not self.per_pair:
            self.ref = [(k.detach(), v.detach()) for k, v in kv], self.chat_logits.detach()
        return kv

    def pack_starts(self, starts):
        """The starts in one row: the part all of them share, then each one's rest. (tokens, seg, pos) [L]
        tensors as prefix_kv reads them, and at [G lists]: where each start's positions lie in the row."""
        root = common_prefix(starts)
        tokens, seg, pos, at = list(starts[0][:root]), [-1] * root, list(range(root)), []
        for g, s in enumerate(starts):
            at.append(list(range(root)) + list(range(len(tokens), len(tokens) + len(s) - root)))
            tokens, seg, pos = tokens + s[root:], seg + [g] * (len(s) - root), pos + list(range(root, len(s)))
        return *(torch.tensor(x, device=self.device) for x in (tokens, seg, pos)), at

    def with_chat(self, logits, targets, rows, lengths, row, place):
        """A row whose window of n predictions is longer than its own tokens less one gets the last
        n + 1 − own predictions of its start (at the same c) in front of its own, row-major. The starts'
        predictions are held once (Pass.at points every row's window at them): (logits, targets, rows, at)
        with logits [Σ reach + kept, vocab] = the starts' kept positions, then the rows' kept ones."""
        if not self.cached:
            return logits, targets, rows, None
        own = torch.bincount(row[row >= 0], minlength=len(self.group)).tolist()      # [2p] tokens after the start
        kept = torch.bincount(rows, minlength=len(own)).tolist()                          # [2p] kept predictions
        need = [max(0, window_of(lengths, r) + 1 - own[r]) for r in range(len(own))]
        if not any(need):
            return logits, targets, rows, None
        ends = np.cumsum(self.reach).tolist()                 # where each start's kept predictions end
        index, start = [], ends[-1]                           # into [the starts' kept positions, then the rows']
        for r, (n_chat, n_own) in enumerate(zip(need, kept)):
            index += range(ends[self.group[r]] - n_chat, ends[self.group[r]])
            index += range(start, start + n_own)
            start += n_own
        counts = torch.tensor([a + b for a, b in zip(need, kept)], device=rows.device)
        return (torch.cat([self.chat_logits, logits]), torch.cat([self.chat_targets, targets]),
                torch.repeat_interleave(torch.arange(len(own), device=rows.device), counts),
                torch.tensor(index, device=logits.device))

    def reach_back(self, full, starts, own):
        """self.reach [G]: how many of each start's last predictions the rows' loss windows read (the persona
        chats: all k, held for the run), and self.chat_targets [Σ reach], the tokens those predict. full: the
        rows' token ids, own: what follows their start."""
        need = [max(0, window_of(self.windows, r) + 1 - len(x)) if self.windows else 0 for r, x in enumerate(own)]
        self.reach = [self.k] * 2 if not self.per_pair else [max(need[i:i + 2]) for i in range(0, len(need), 2)]
        first = [full[self.group.index(g)] for g in range(len(starts))]   # a row of each start: what comes next
        self.chat_targets = torch.tensor([t for x, s, n in zip(first, starts, self.reach)
                                          for t in x[len(s) - n + 1:len(s) + 1]], dtype=torch.long, device=self.device)

    def batch(self, texts, c):
        """PairRunner.batch's (inputs, row, place, length) for what follows the cached starts: one row per start
        [G, W], its rows end to end, each position seeing its start and its own row causally."""
        if not self.cached:
            return super().batch(texts, c)
        full = [token_ids(self.tokenizer, t) for t in texts]
        self.group, starts = self.starts(full)
        if any(x[:len(starts[g])] != starts[g] for x, g in zip(full, self.group)):
            raise ValueError("a row does not begin with the shared start this runner cached")
        own = [x[len(starts[g]):] for x, g in zip(full, self.group)]                # [rows] tokens after the start
        self.reach_back(full, starts, own)
        tokens_s, seg, pos, at = self.pack_starts(starts)
        self.start_positions = len(seg)                                    # what prefix_kv runs (bench.block_tokens)
        groups = len(starts)
        width = max(sum(len(x) for x, g in zip(own, self.group) if g == h) for h in range(groups))
        tokens, row, place = ([[] for _ in range(groups)] for _ in range(3))
        for r, (x, g) in enumerate(zip(own, self.group)):
            tokens[g] += x
            row[g] += [r] * len(x)
            place[g] += list(range(len(x)))
        tokens, row, place = (torch.tensor([v + [fill] * (width - len(v)) for v in x], device=self.device)
                              for x, fill in ((tokens, 0), (row, -1), (place, 0)))            # [G, W] each
        mine = torch.arange(groups, device=self.device)[:, None]                                 # [G, 1]
        sees = torch.cat([((seg[None] == -1) | (seg[None] == mine))[:, None].expand(groups, width, len(seg)),
                          (row[:, :, None] == row[:, None]) & (place[:, :, None] >= place[:, None])], -1)
        kv = self.prefix_kv(c, tokens_s, seg, pos, at, self.reach)
        kv = [(k.expand(groups, -1, -1, -1), v.expand(groups, -1, -1, -1)) for k, v in kv]    # one copy per row
        lengths = torch.tensor([len(x) for x in own] + [0], device=self.device)            # [rows + 1]: pads last
        offset = torch.tensor([len(s) for s in starts], device=self.device)[:, None]       # [G, 1]
        return ({"input_ids": tokens, "attention_mask": self.mask(sees, kv[0][0].dtype), "position_ids": offset + place,
                 "past_key_values": DynamicCache(kv, config=self.model.config), "use_cache": True},
                row.flatten(), place.flatten(), lengths[row.flatten()])
