"""RLWE: keys, key generation, encryption, decryption and hybrid key switching."""
from .context import Context
from .decryptor import Decryptor
from .encryptor import Encryptor
from .keys import EvaluationKeys, KeyGenerator, PublicKey, SecretKey, SwitchingKey
from .objects import Ciphertext, Plaintext
from .slab import KeySlab, SlabKey, SlabKeys, split_rows, stack_rows

__all__ = ["Context", "Decryptor", "Encryptor", "EvaluationKeys", "KeyGenerator", "PublicKey",
           "SecretKey", "SwitchingKey", "Ciphertext", "Plaintext", "KeySlab", "SlabKey", "SlabKeys",
           "split_rows", "stack_rows"]
