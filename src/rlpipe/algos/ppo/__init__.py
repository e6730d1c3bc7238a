"""PPO (CleanRL's clipped objective with GAE) on EnvPool: params (hyper-parameters), train
(one segment)."""
