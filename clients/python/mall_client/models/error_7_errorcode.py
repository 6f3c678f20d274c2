from enum import IntEnum


class Error7Errorcode(IntEnum):
    VALUE_7 = 7

    def __str__(self) -> str:
        return str(self.value)
