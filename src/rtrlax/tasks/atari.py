"""Atari streams through ale-py (the ROMs ship in its wheel), stepped on the host.

The Arcade Learning Environment is C++ and not jittable, so a stream is produced on the
host in chunks (:meth:`AtariStream.rollout`), then handed to a jitted learner as arrays
(``rtrlax.agents.prediction.TDPrediction.learn``).  Settings (stated, fixed):

* frame skip 4 (ALE's own ``frame_skip``: the action repeats, rewards are summed),
  sticky actions with probability 0.25 (``repeat_action_probability``, Machado et al.
  2018), episodes end at game over or after ``max_steps`` agent steps;
* **observation features** (256 numbers): the grey-scale 210×160 screen cropped to
  rows 2..209 and columns 0..159 (208×160), averaged over 13×10 blocks to 16×16, scaled to
  [0, 1].  With the learners' one-hot of the previous action (18, the full action set)
  and the reward this gives the 275 inputs we read the CCN papers' Atari setting to use
  (our reading; the papers do not spell the features out);
* **behaviour policy**: uniformly random over the game's *minimal* action set, drawn
  from a numpy generator seeded per stream, logged as the index in the full 18-action
  set.  The papers used pre-trained agents that are not available here; a random policy
  is fixed, reproducible and needs nothing stored.

Needs ``ale-py`` (in the ``rtrlax[rl]`` extra); imported lazily.
"""

from __future__ import annotations

import numpy as np

FEATURES = 256
N_ACTIONS = 18


def import_ale():
    try:
        import ale_py
    except ImportError as err:
        raise ImportError(
            f"Atari streams need ale-py; install it with `pip install 'rtrlax[rl]'` ({err})."
        ) from err
    return ale_py


def screen_features(grey: np.ndarray) -> np.ndarray:
    """16×16 block means of the 210×160 grey screen (rows 2..209), in [0, 1], flat (256)."""
    if grey.shape != (210, 160):
        raise ValueError(f"expected a 210×160 grey-scale screen, got shape {grey.shape}.")
    crop = grey[2:210].astype(np.float32)  # 208 × 160
    return crop.reshape(16, 13, 16, 10).mean(axis=(1, 3)).ravel() / 255.0


class AtariStream:
    """``num_envs`` ALE games stepped on the host under the random behaviour policy.

    ``name``, ``obs_size`` (256) and ``num_actions`` (18) are what a learner reads.
    """

    def __init__(self, game: str, *, num_envs: int = 1, seed: int = 0, frame_skip: int = 4,
                 sticky: float = 0.25, max_steps: int = 27_000):
        ale_py = import_ale()
        from ale_py import roms

        game = game.lower()
        known = roms.get_all_rom_ids()
        if game not in known:
            raise ValueError(f"unknown Atari game {game!r}; ale-py ships {', '.join(sorted(known))}.")
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}.")
        self.name, self.obs_size, self.num_actions = f"atari-{game}", FEATURES, N_ACTIONS
        self.max_steps = int(max_steps)
        self.ales, self.rngs = [], []
        for i in range(num_envs):
            ale = ale_py.ALEInterface()
            ale.setLoggerMode(ale_py.LoggerMode.Error)
            ale.setInt("random_seed", seed * 1000 + i)
            ale.setInt("frame_skip", frame_skip)
            ale.setFloat("repeat_action_probability", sticky)
            ale.loadROM(roms.get_rom_path(game))
            self.ales.append(ale)
            self.rngs.append(np.random.default_rng([seed, i]))
        self._actions = list(self.ales[0].getLegalActionSet())
        self.minimal = [np.asarray([self._actions.index(a) for a in ale.getMinimalActionSet()]) for ale in self.ales]
        self._pending = [(0.0, True) for _ in self.ales]  # (r_t, first_t) of the next observation
        self._length = [0] * num_envs

    def rollout(self, n: int):
        """The next ``n`` steps of every game: ``xs [B, n, 256]`` (features of o_t),
        ``rewards [B, n]`` (r_t), ``firsts [B, n]``, ``actions [B, n]`` (a_t, full-set index)."""
        b = len(self.ales)
        xs = np.zeros((b, n, FEATURES), np.float32)
        rewards = np.zeros((b, n), np.float32)
        firsts = np.zeros((b, n), bool)
        actions = np.zeros((b, n), np.int32)
        for e, ale in enumerate(self.ales):
            for t in range(n):
                r, first = self._pending[e]
                xs[e, t] = screen_features(ale.getScreenGrayscale())
                rewards[e, t], firsts[e, t] = r, first
                a = int(self.rngs[e].choice(self.minimal[e]))
                actions[e, t] = a
                r = float(ale.act(self._actions[a]))
                self._length[e] += 1
                done = ale.game_over() or self._length[e] >= self.max_steps
                if done:
                    ale.reset_game()
                    self._length[e] = 0
                self._pending[e] = (r, done)
        return xs, rewards, firsts, actions
