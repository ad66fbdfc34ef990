"""Ablations: variants × seeds on the same identities, judged by E, with paired bootstrap CIs."""
