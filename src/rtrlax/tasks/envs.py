"""Environment streams: gymnax environments as pure, vmappable, auto-resetting streams.

An :class:`EnvStream` wraps one `gymnax <https://github.com/RobertTLange/gymnax>`_
environment (JAX-native: ``reset``/``step`` are pure and jittable) behind three pure
functions, all unbatched (``jax.vmap`` them over environments):

* ``reset(key) -> (EnvState, o_0)``
* ``step(state, a_t) -> (EnvState, o_{t+1}, r_{t+1}, done_{t+1})``: when the episode
  ends (terminated *or* truncated by the time limit) the returned observation is
  already the first observation of the next episode (gymnax's auto-reset), and
  ``done_{t+1}`` says so.  An agent treats ``done`` as the end of the discounted
  return (``γ = 0`` across it) and restarts its model state there.
* ``features(o) -> x``: the observation as a flat float vector of ``obs_size``.

Nothing here learns: this module is data.  :func:`make_env` knows these names

=========================  =======  =========  ================================================
name                       obs      actions    notes
=========================  =======  =========  ================================================
``CartPole-v1``            4        2          x, ẋ, θ, θ̇; +1 per step, 500-step limit
``CartPole-PO``            2        2          CartPole-v1 with both velocities removed
                                               (x, θ only): needs memory to balance
``MemoryChain-bsuite``     3        2          a ±1 cue at step 0, reward ±1 at step
                                               ``memory_length`` for repeating it
                                               (``make_env(..., memory_length=n)``)
``Breakout-MinAtar``       400      3          10×10×4 binary grid, flattened
``Asterix-MinAtar``        400      5          10×10×4
``Freeway-MinAtar``        700      3          10×10×7
``SpaceInvaders-MinAtar``  600      4          10×10×6
=========================  =======  =========  ================================================

and passes any other gymnax name (``gymnax.registered_envs``) through unchanged, with
the observation flattened.  gymnax (which pulls in Flax) is an optional dependency:
install ``rtrlax[rl]``; ``import rtrlax`` never needs it.

:func:`behaviour_policy` gives the fixed, scripted policies under which the
prediction benchmark logs its streams (see its docstring for why scripted).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

#: the environments :func:`make_env` documents (any other gymnax name also works)
ENV_NAMES = (
    "CartPole-v1",
    "CartPole-PO",
    "MemoryChain-bsuite",
    "Breakout-MinAtar",
    "Asterix-MinAtar",
    "Freeway-MinAtar",
    "SpaceInvaders-MinAtar",
)


def import_gymnax():
    """``gymnax``, or a clear error naming the extra that installs it."""
    try:
        import gymnax
    except ImportError as err:  # gymnax itself, or one of its own imports (flax, six, ...)
        raise ImportError(
            "environment streams need gymnax (JAX-native RL environments); install them "
            f"with `pip install 'rtrlax[rl]'` (import failed: {err})."
        ) from err
    return gymnax


class EnvState(NamedTuple):
    env: Any  #: the gymnax environment state
    key: PRNGKeyArray  #: this environment's randomness (auto-resets, stochastic dynamics)


def _hide_velocities(o):
    return o[jnp.array([0, 2])]


class EnvStream(eqx.Module):
    """One gymnax environment as a pure stream (see module docstring).  Build it with
    :func:`make_env`."""

    name: str = eqx.field(static=True)
    env: Any = eqx.field(static=True)  #: the gymnax environment (a static, hashable object)
    params: Any = eqx.field(static=True)  #: its ``EnvParams`` (frozen dataclass)
    num_actions: int = eqx.field(static=True)
    obs_size: int = eqx.field(static=True)
    observe: Callable = eqx.field(static=True)  #: raw observation -> features

    def __init__(self, name, env, params, num_actions, obs_size, observe):
        self.name, self.env, self.params = name, env, params
        self.num_actions, self.obs_size, self.observe = int(num_actions), int(obs_size), observe

    def reset(self, key: PRNGKeyArray) -> tuple[EnvState, Array]:
        """A fresh episode: ``(state, raw o_0)``."""
        key, sub = jax.random.split(key)
        obs, env_state = self.env.reset(sub, self.params)
        return EnvState(env_state, key), obs

    def step(self, state: EnvState, action: Int[Array, ""]):
        """``(state, raw o_{t+1}, r_{t+1}, done_{t+1})`` with auto-reset on ``done``."""
        key, sub = jax.random.split(state.key)
        obs, env_state, reward, terminated, truncated, _ = self.env.step(
            sub, state.env, action, self.params
        )
        done = jnp.logical_or(terminated, truncated)
        return EnvState(env_state, key), obs, jnp.asarray(reward, jnp.float32), done

    def features(self, obs) -> Float[Array, " obs_size"]:
        """The observation as the flat float32 feature vector a model reads."""
        return jnp.ravel(self.observe(obs)).astype(jnp.float32)


@functools.lru_cache(maxsize=64)
def make_env(name: str, *, memory_length: int | None = None) -> EnvStream:
    """The :class:`EnvStream` named ``name`` (see the module docstring's table).  The
    same arguments return the same object (cached), so agents built on it share
    their compiled chunks.

    ``memory_length`` (MemoryChain only): steps between the cue and the query
    (bsuite's default 5)."""
    if not isinstance(name, str):
        raise ValueError(f"the environment name must be a string such as 'CartPole-v1', got {name!r}.")
    gymnax = import_gymnax()
    known = tuple(gymnax.registered_envs)
    base = "CartPole-v1" if name == "CartPole-PO" else name
    if base not in known:
        raise ValueError(
            f"unknown environment {name!r}; rtrlax knows {', '.join(ENV_NAMES)} and passes "
            f"through every other gymnax name ({', '.join(n for n in known if n not in ENV_NAMES)})."
        )
    if memory_length is not None and base != "MemoryChain-bsuite":
        raise ValueError(f"memory_length applies to MemoryChain-bsuite only, not {name!r}.")
    env, params = gymnax.make(base)
    if memory_length is not None:
        if isinstance(memory_length, bool) or not isinstance(memory_length, int) or memory_length < 1:
            raise ValueError(f"memory_length must be a positive integer, got {memory_length!r}.")
        params = params.replace(memory_length=memory_length)
    observe = _hide_velocities if name == "CartPole-PO" else (lambda o: o)
    space = env.action_space(params)
    num_actions = int(getattr(space, "n", 0))  # 0: not a discrete space (agents check)
    obs, _ = jax.eval_shape(lambda k: env.reset(k, params), jax.random.key(0))
    obs_size = jax.eval_shape(lambda o: jnp.ravel(observe(o)), obs).shape[0]
    return EnvStream(name, env, params, num_actions, obs_size, observe)


def is_discrete(stream: EnvStream) -> bool:
    """Whether the stream's action space is discrete (``num_actions`` choices)."""
    return stream.num_actions > 0 and type(stream.env.action_space(stream.params)).__name__ == "Discrete"


# --- fixed behaviour policies (for prediction) ------------------------------------------------


@functools.lru_cache(maxsize=64)
def behaviour_policy(name: str, *, epsilon: float = 0.1) -> Callable:
    """A fixed scripted policy ``policy(key, raw_obs) -> action`` for the stream ``name``,
    ε-greedy around a hand-written rule (uniformly random action with probability ε):

    * CartPole (both variants; the policy sees the full state): push toward the pole's
      lean, ``a = [θ + 0.5 θ̇ > 0]`` — balances for hundreds of steps, so episodes of
      varied length occur;
    * Breakout-MinAtar: move the paddle under the ball's column (channels paddle=0, ball=1);
    * Freeway-MinAtar: up with probability 0.8, else stay;
    * everything else: uniformly random.

    Scripted, not a trained checkpoint: it is fixed by this code alone (nothing to store
    or version under ``benchmarks/``), cheap and jittable inside the same chunk as the
    learner, and its streams have non-trivial returns on every benchmark game.
    """
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must lie in [0, 1], got {epsilon}.")
    stream = make_env(name)
    n = stream.num_actions
    if n < 1:
        raise ValueError(f"{name} has no discrete action space; behaviour policies are discrete.")

    if name.startswith("CartPole"):
        def rule(key, o):
            return (o[2] + 0.5 * o[3] > 0).astype(jnp.int32)
    elif name == "Breakout-MinAtar":
        def rule(key, o):
            cols = jnp.arange(o.shape[1])
            paddle = jnp.sum(jnp.max(o[..., 0], 0) * cols) / jnp.maximum(jnp.sum(jnp.max(o[..., 0], 0)), 1)
            ball = jnp.sum(jnp.max(o[..., 1], 0) * cols) / jnp.maximum(jnp.sum(jnp.max(o[..., 1], 0)), 1)
            return jnp.where(ball < paddle, 1, jnp.where(ball > paddle, 2, 0)).astype(jnp.int32)
    elif name == "Freeway-MinAtar":
        def rule(key, o):
            return jnp.where(jax.random.uniform(key) < 0.8, 1, 0).astype(jnp.int32)
    else:
        def rule(key, o):
            return jax.random.randint(key, (), 0, n)

    def policy(key, obs):
        k1, k2, k3 = jax.random.split(key, 3)
        random = jax.random.randint(k2, (), 0, n)
        return jnp.where(jax.random.uniform(k1) < epsilon, random, rule(k3, obs)).astype(jnp.int32)

    return policy


class Transition(NamedTuple):
    """One logged step of a stream under a policy (leading axes added by scans/vmaps)."""

    x: Float[Array, " obs_size"]  #: features of o_t
    reward: Float[Array, ""]  #: r_t (received on arriving at o_t; 0 at a stream's start)
    first: Bool[Array, ""]  #: o_t starts an episode
    action: Int[Array, ""]  #: a_t ~ policy(o_t)


class PolicyStreamState(NamedTuple):
    env: EnvState
    obs: Any  #: raw o_t
    reward: Float[Array, ""]
    first: Bool[Array, ""]
    key: PRNGKeyArray


def policy_stream(stream: EnvStream, policy: Callable):
    """``(init(key) -> state, next(state) -> (state, Transition))``: the stream of
    observations, rewards and episode starts of ``stream`` under ``policy``, unbatched
    and jittable (``jax.vmap`` it over environments, ``lax.scan`` it over time)."""

    def init(key):
        k_env, key = jax.random.split(key)
        env_state, obs = stream.reset(k_env)
        return PolicyStreamState(env_state, obs, jnp.zeros((), jnp.float32), jnp.ones((), bool), key)

    def next_(s: PolicyStreamState):
        key, sub = jax.random.split(s.key)
        a = policy(sub, s.obs)
        out = Transition(stream.features(s.obs), s.reward, s.first, a)
        env_state, obs, r, done = stream.step(s.env, a)
        return PolicyStreamState(env_state, obs, r, done, key), out

    return init, next_
