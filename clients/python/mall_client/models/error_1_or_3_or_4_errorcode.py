from enum import IntEnum


class Error1Or3Or4Errorcode(IntEnum):
    VALUE_1 = 1
    VALUE_3 = 3
    VALUE_4 = 4

    def __str__(self) -> str:
        return str(self.value)
