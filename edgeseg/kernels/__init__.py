"""Every CPU kernel of edgeseg: private loops compiled by Numba (ahead of time at install, or JIT), each behind one
public wrapper that checks its inputs. jit.py decides how they are compiled."""
