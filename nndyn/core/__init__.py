"""The core: settings and their parameter schema, order parameters and weights, the kernels
(generated closed forms bound to the flow table) and the blocks they are evaluated on, the ODE
integrator, the SGD simulator, trajectories and their comparison. It never imports
`nndyn.sweeps` or `nndyn.app`."""
