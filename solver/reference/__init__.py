"""Independent reference solutions the PDE solver is verified against (numpy/scipy only).

- ``exact``: closed forms. Linear unit (rho_t = rho_0 translated, scaled by e^{-lam t};
  Gaussian with variance growing by 2t/beta under noise) and the fixed-feature kernel flow
  f' = -K W (f - y) - lam f, solved by eigen-decomposition.
- ``gibbs``: the noisy steady state rho_inf = exp(-beta Psi[rho_inf]) / Z by Newton's method on
  f in R^M with a tensor quadrature of the parameter box.
- ``lagrangian``: beta = inf by characteristics, rho_t = sum_q W_q delta(theta_q(t)) from
  weighted quadrature nodes of rho_0, RK4 or DOP853.
- ``rules``: the quadrature rules they share (composite Gauss-Legendre, periodic trapezoid,
  restricted and native rules of rho_0).

No module imports DOLFINx, so the references stay independent of the mesh solver.
"""
