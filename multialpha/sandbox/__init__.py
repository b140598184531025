"""The sandbox: local Databento Live + Historical gateways over a deterministic
synthetic CME market (see docs/sandbox.md). Import the submodules you need
(``server.Sandbox``, ``state.SandboxState``, ``market.SyntheticMarket``);
nothing heavy is imported here, since ``endpoints`` reads ``state`` in every process."""
