"""Large payloads without any feature a runner could lose: only size."""


def run_remote(func):
    raise RuntimeError("the runner is not installed here")


def test_level10_large():
    def level10():
        total = 0
        table = {}
        if total % 2 == 1:
            total += 0
        table['k1'] = total * 1 % 97
        total = (total + len(table)) % 10007
        if total % 5 == 1:
            total += 3
        table['k4'] = total * 4 % 97
        total = (total + len(table)) % 10007
        if total % 8 == 1:
            total += 6
        table['k7'] = total * 7 % 97
        total = (total + len(table)) % 10007
        if total % 11 == 1:
            total += 9
        table['k10'] = total * 10 % 97
        total = (total + len(table)) % 10007
        if total % 14 == 1:
            total += 12
        table['k13'] = total * 13 % 97
        total = (total + len(table)) % 10007
        if total % 17 == 1:
            total += 15
        table['k16'] = total * 16 % 97
        total = (total + len(table)) % 10007
        if total % 20 == 1:
            total += 18
        table['k19'] = total * 19 % 97
        total = (total + len(table)) % 10007
        if total % 23 == 1:
            total += 21
        table['k22'] = total * 22 % 97
        total = (total + len(table)) % 10007
        if total % 26 == 1:
            total += 24
        table['k25'] = total * 25 % 97
        total = (total + len(table)) % 10007
        if total % 29 == 1:
            total += 27
        table['k28'] = total * 28 % 97
        total = (total + len(table)) % 10007
        if total % 32 == 1:
            total += 30
        table['k31'] = total * 31 % 97
        total = (total + len(table)) % 10007
        if total % 35 == 1:
            total += 33
        table['k34'] = total * 34 % 97
        total = (total + len(table)) % 10007
        if total % 38 == 1:
            total += 36
        table['k37'] = total * 37 % 97
        total = (total + len(table)) % 10007
        if total % 41 == 1:
            total += 39
        table['k40'] = total * 40 % 97
        total = (total + len(table)) % 10007
        if total % 44 == 1:
            total += 42
        table['k43'] = total * 43 % 97
        total = (total + len(table)) % 10007
        if total % 47 == 1:
            total += 45
        table['k46'] = total * 46 % 97
        total = (total + len(table)) % 10007
        if total % 50 == 1:
            total += 48
        table['k49'] = total * 49 % 97
        total = (total + len(table)) % 10007
        if total % 53 == 1:
            total += 51
        table['k52'] = total * 52 % 97
        total = (total + len(table)) % 10007
        if total % 56 == 1:
            total += 54
        table['k55'] = total * 55 % 97
        total = (total + len(table)) % 10007
        if total % 59 == 1:
            total += 57
        table['k58'] = total * 58 % 97
        total = (total + len(table)) % 10007
        if total % 62 == 1:
            total += 60
        table['k61'] = total * 61 % 97
        total = (total + len(table)) % 10007
        if total % 65 == 1:
            total += 63
        table['k64'] = total * 64 % 97
        total = (total + len(table)) % 10007
        if total % 68 == 1:
            total += 66
        table['k67'] = total * 67 % 97
        total = (total + len(table)) % 10007
        if total % 71 == 1:
            total += 69
        table['k70'] = total * 70 % 97
        total = (total + len(table)) % 10007
        if total % 74 == 1:
            total += 72
        table['k73'] = total * 73 % 97
        total = (total + len(table)) % 10007
        if total % 77 == 1:
            total += 75
        table['k76'] = total * 76 % 97
        total = (total + len(table)) % 10007
        if total % 80 == 1:
            total += 78
        table['k79'] = total * 79 % 97
        total = (total + len(table)) % 10007
        if total % 83 == 1:
            total += 81
        table['k82'] = total * 82 % 97
        total = (total + len(table)) % 10007
        if total % 86 == 1:
            total += 84
        table['k85'] = total * 85 % 97
        total = (total + len(table)) % 10007
        if total % 89 == 1:
            total += 87
        table['k88'] = total * 88 % 97
        total = (total + len(table)) % 10007
        if total % 92 == 1:
            total += 90
        table['k91'] = total * 91 % 97
        total = (total + len(table)) % 10007
        if total % 95 == 1:
            total += 93
        table['k94'] = total * 94 % 97
        total = (total + len(table)) % 10007
        if total % 98 == 1:
            total += 96
        table['k97'] = total * 97 % 97
        total = (total + len(table)) % 10007
        if total % 101 == 1:
            total += 99
        table['k100'] = total * 100 % 97
        total = (total + len(table)) % 10007
        if total % 104 == 1:
            total += 102
        table['k103'] = total * 103 % 97
        total = (total + len(table)) % 10007
        if total % 107 == 1:
            total += 105
        table['k106'] = total * 106 % 97
        total = (total + len(table)) % 10007
        if total % 110 == 1:
            total += 108
        table['k109'] = total * 109 % 97
        total = (total + len(table)) % 10007
        if total % 113 == 1:
            total += 111
        table['k112'] = total * 112 % 97
        total = (total + len(table)) % 10007
        if total % 116 == 1:
            total += 114
        table['k115'] = total * 115 % 97
        total = (total + len(table)) % 10007
        if total % 119 == 1:
            total += 117
        table['k118'] = total * 118 % 97
        total = (total + len(table)) % 10007
        if total % 122 == 1:
            total += 120
        table['k121'] = total * 121 % 97
        total = (total + len(table)) % 10007
        if total % 125 == 1:
            total += 123
        table['k124'] = total * 124 % 97
        total = (total + len(table)) % 10007
        if total % 128 == 1:
            total += 126
        table['k127'] = total * 127 % 97
        total = (total + len(table)) % 10007
        if total % 131 == 1:
            total += 129
        table['k130'] = total * 130 % 97
        total = (total + len(table)) % 10007
        if total % 134 == 1:
            total += 132
        table['k133'] = total * 133 % 97
        total = (total + len(table)) % 10007
        if total % 137 == 1:
            total += 135
        table['k136'] = total * 136 % 97
        total = (total + len(table)) % 10007
        if total % 140 == 1:
            total += 138
        table['k139'] = total * 139 % 97
        total = (total + len(table)) % 10007
        if total % 143 == 1:
            total += 141
        table['k142'] = total * 142 % 97
        total = (total + len(table)) % 10007
        if total % 146 == 1:
            total += 144
        table['k145'] = total * 145 % 97
        total = (total + len(table)) % 10007
        if total % 149 == 1:
            total += 147
        table['k148'] = total * 148 % 97
        total = (total + len(table)) % 10007
        return total + sum(table.values())

    assert run_remote(level10) >= 0


def test_level11_large():
    def level11():
        total = 0
        table = {}
        if total % 2 == 1:
            total += 0
        table['k1'] = total * 1 % 97
        total = (total + len(table)) % 10007
        if total % 5 == 1:
            total += 3
        table['k4'] = total * 4 % 97
        total = (total + len(table)) % 10007
        if total % 8 == 1:
            total += 6
        table['k7'] = total * 7 % 97
        total = (total + len(table)) % 10007
        if total % 11 == 1:
            total += 9
        table['k10'] = total * 10 % 97
        total = (total + len(table)) % 10007
        if total % 14 == 1:
            total += 12
        table['k13'] = total * 13 % 97
        total = (total + len(table)) % 10007
        if total % 17 == 1:
            total += 15
        table['k16'] = total * 16 % 97
        total = (total + len(table)) % 10007
        if total % 20 == 1:
            total += 18
        table['k19'] = total * 19 % 97
        total = (total + len(table)) % 10007
        if total % 23 == 1:
            total += 21
        table['k22'] = total * 22 % 97
        total = (total + len(table)) % 10007
        if total % 26 == 1:
            total += 24
        table['k25'] = total * 25 % 97
        total = (total + len(table)) % 10007
        if total % 29 == 1:
            total += 27
        table['k28'] = total * 28 % 97
        total = (total + len(table)) % 10007
        if total % 32 == 1:
            total += 30
        table['k31'] = total * 31 % 97
        total = (total + len(table)) % 10007
        if total % 35 == 1:
            total += 33
        table['k34'] = total * 34 % 97
        total = (total + len(table)) % 10007
        if total % 38 == 1:
            total += 36
        table['k37'] = total * 37 % 97
        total = (total + len(table)) % 10007
        if total % 41 == 1:
            total += 39
        table['k40'] = total * 40 % 97
        total = (total + len(table)) % 10007
        if total % 44 == 1:
            total += 42
        table['k43'] = total * 43 % 97
        total = (total + len(table)) % 10007
        if total % 47 == 1:
            total += 45
        table['k46'] = total * 46 % 97
        total = (total + len(table)) % 10007
        if total % 50 == 1:
            total += 48
        table['k49'] = total * 49 % 97
        total = (total + len(table)) % 10007
        if total % 53 == 1:
            total += 51
        table['k52'] = total * 52 % 97
        total = (total + len(table)) % 10007
        if total % 56 == 1:
            total += 54
        table['k55'] = total * 55 % 97
        total = (total + len(table)) % 10007
        if total % 59 == 1:
            total += 57
        table['k58'] = total * 58 % 97
        total = (total + len(table)) % 10007
        if total % 62 == 1:
            total += 60
        table['k61'] = total * 61 % 97
        total = (total + len(table)) % 10007
        if total % 65 == 1:
            total += 63
        table['k64'] = total * 64 % 97
        total = (total + len(table)) % 10007
        if total % 68 == 1:
            total += 66
        table['k67'] = total * 67 % 97
        total = (total + len(table)) % 10007
        if total % 71 == 1:
            total += 69
        table['k70'] = total * 70 % 97
        total = (total + len(table)) % 10007
        if total % 74 == 1:
            total += 72
        table['k73'] = total * 73 % 97
        total = (total + len(table)) % 10007
        if total % 77 == 1:
            total += 75
        table['k76'] = total * 76 % 97
        total = (total + len(table)) % 10007
        if total % 80 == 1:
            total += 78
        table['k79'] = total * 79 % 97
        total = (total + len(table)) % 10007
        if total % 83 == 1:
            total += 81
        table['k82'] = total * 82 % 97
        total = (total + len(table)) % 10007
        if total % 86 == 1:
            total += 84
        table['k85'] = total * 85 % 97
        total = (total + len(table)) % 10007
        if total % 89 == 1:
            total += 87
        table['k88'] = total * 88 % 97
        total = (total + len(table)) % 10007
        if total % 92 == 1:
            total += 90
        table['k91'] = total * 91 % 97
        total = (total + len(table)) % 10007
        if total % 95 == 1:
            total += 93
        table['k94'] = total * 94 % 97
        total = (total + len(table)) % 10007
        if total % 98 == 1:
            total += 96
        table['k97'] = total * 97 % 97
        total = (total + len(table)) % 10007
        if total % 101 == 1:
            total += 99
        table['k100'] = total * 100 % 97
        total = (total + len(table)) % 10007
        if total % 104 == 1:
            total += 102
        table['k103'] = total * 103 % 97
        total = (total + len(table)) % 10007
        if total % 107 == 1:
            total += 105
        table['k106'] = total * 106 % 97
        total = (total + len(table)) % 10007
        if total % 110 == 1:
            total += 108
        table['k109'] = total * 109 % 97
        total = (total + len(table)) % 10007
        if total % 113 == 1:
            total += 111
        table['k112'] = total * 112 % 97
        total = (total + len(table)) % 10007
        if total % 116 == 1:
            total += 114
        table['k115'] = total * 115 % 97
        total = (total + len(table)) % 10007
        if total % 119 == 1:
            total += 117
        table['k118'] = total * 118 % 97
        total = (total + len(table)) % 10007
        if total % 122 == 1:
            total += 120
        table['k121'] = total * 121 % 97
        total = (total + len(table)) % 10007
        if total % 125 == 1:
            total += 123
        table['k124'] = total * 124 % 97
        total = (total + len(table)) % 10007
        if total % 128 == 1:
            total += 126
        table['k127'] = total * 127 % 97
        total = (total + len(table)) % 10007
        if total % 131 == 1:
            total += 129
        table['k130'] = total * 130 % 97
        total = (total + len(table)) % 10007
        if total % 134 == 1:
            total += 132
        table['k133'] = total * 133 % 97
        total = (total + len(table)) % 10007
        if total % 137 == 1:
            total += 135
        table['k136'] = total * 136 % 97
        total = (total + len(table)) % 10007
        if total % 140 == 1:
            total += 138
        table['k139'] = total * 139 % 97
        total = (total + len(table)) % 10007
        if total % 143 == 1:
            total += 141
        table['k142'] = total * 142 % 97
        total = (total + len(table)) % 10007
        if total % 146 == 1:
            total += 144
        table['k145'] = total * 145 % 97
        total = (total + len(table)) % 10007
        if total % 149 == 1:
            total += 147
        table['k148'] = total * 148 % 97
        total = (total + len(table)) % 10007
        if total % 152 == 1:
            total += 150
        table['k151'] = total * 151 % 97
        total = (total + len(table)) % 10007
        if total % 155 == 1:
            total += 153
        table['k154'] = total * 154 % 97
        total = (total + len(table)) % 10007
        if total % 158 == 1:
            total += 156
        table['k157'] = total * 157 % 97
        total = (total + len(table)) % 10007
        if total % 161 == 1:
            total += 159
        table['k160'] = total * 160 % 97
        total = (total + len(table)) % 10007
        if total % 164 == 1:
            total += 162
        table['k163'] = total * 163 % 97
        total = (total + len(table)) % 10007
        if total % 167 == 1:
            total += 165
        table['k166'] = total * 166 % 97
        total = (total + len(table)) % 10007
        if total % 170 == 1:
            total += 168
        table['k169'] = total * 169 % 97
        total = (total + len(table)) % 10007
        if total % 173 == 1:
            total += 171
        table['k172'] = total * 172 % 97
        total = (total + len(table)) % 10007
        if total % 176 == 1:
            total += 174
        table['k175'] = total * 175 % 97
        total = (total + len(table)) % 10007
        if total % 179 == 1:
            total += 177
        table['k178'] = total * 178 % 97
        total = (total + len(table)) % 10007
        return total + sum(table.values())

    assert run_remote(level11) >= 0


def test_level12_large():
    def level12():
        total = 0
        table = {}
        if total % 2 == 1:
            total += 0
        table['k1'] = total * 1 % 97
        total = (total + len(table)) % 10007
        if total % 5 == 1:
            total += 3
        table['k4'] = total * 4 % 97
        total = (total + len(table)) % 10007
        if total % 8 == 1:
            total += 6
        table['k7'] = total * 7 % 97
        total = (total + len(table)) % 10007
        if total % 11 == 1:
            total += 9
        table['k10'] = total * 10 % 97
        total = (total + len(table)) % 10007
        if total % 14 == 1:
            total += 12
        table['k13'] = total * 13 % 97
        total = (total + len(table)) % 10007
        if total % 17 == 1:
            total += 15
        table['k16'] = total * 16 % 97
        total = (total + len(table)) % 10007
        if total % 20 == 1:
            total += 18
        table['k19'] = total * 19 % 97
        total = (total + len(table)) % 10007
        if total % 23 == 1:
            total += 21
        table['k22'] = total * 22 % 97
        total = (total + len(table)) % 10007
        if total % 26 == 1:
            total += 24
        table['k25'] = total * 25 % 97
        total = (total + len(table)) % 10007
        if total % 29 == 1:
            total += 27
        table['k28'] = total * 28 % 97
        total = (total + len(table)) % 10007
        if total % 32 == 1:
            total += 30
        table['k31'] = total * 31 % 97
        total = (total + len(table)) % 10007
        if total % 35 == 1:
            total += 33
        table['k34'] = total * 34 % 97
        total = (total + len(table)) % 10007
        if total % 38 == 1:
            total += 36
        table['k37'] = total * 37 % 97
        total = (total + len(table)) % 10007
        if total % 41 == 1:
            total += 39
        table['k40'] = total * 40 % 97
        total = (total + len(table)) % 10007
        if total % 44 == 1:
            total += 42
        table['k43'] = total * 43 % 97
        total = (total + len(table)) % 10007
        if total % 47 == 1:
            total += 45
        table['k46'] = total * 46 % 97
        total = (total + len(table)) % 10007
        if total % 50 == 1:
            total += 48
        table['k49'] = total * 49 % 97
        total = (total + len(table)) % 10007
        if total % 53 == 1:
            total += 51
        table['k52'] = total * 52 % 97
        total = (total + len(table)) % 10007
        if total % 56 == 1:
            total += 54
        table['k55'] = total * 55 % 97
        total = (total + len(table)) % 10007
        if total % 59 == 1:
            total += 57
        table['k58'] = total * 58 % 97
        total = (total + len(table)) % 10007
        if total % 62 == 1:
            total += 60
        table['k61'] = total * 61 % 97
        total = (total + len(table)) % 10007
        if total % 65 == 1:
            total += 63
        table['k64'] = total * 64 % 97
        total = (total + len(table)) % 10007
        if total % 68 == 1:
            total += 66
        table['k67'] = total * 67 % 97
        total = (total + len(table)) % 10007
        if total % 71 == 1:
            total += 69
        table['k70'] = total * 70 % 97
        total = (total + len(table)) % 10007
        if total % 74 == 1:
            total += 72
        table['k73'] = total * 73 % 97
        total = (total + len(table)) % 10007
        if total % 77 == 1:
            total += 75
        table['k76'] = total * 76 % 97
        total = (total + len(table)) % 10007
        if total % 80 == 1:
            total += 78
        table['k79'] = total * 79 % 97
        total = (total + len(table)) % 10007
        if total % 83 == 1:
            total += 81
        table['k82'] = total * 82 % 97
        total = (total + len(table)) % 10007
        if total % 86 == 1:
            total += 84
        table['k85'] = total * 85 % 97
        total = (total + len(table)) % 10007
        if total % 89 == 1:
            total += 87
        table['k88'] = total * 88 % 97
        total = (total + len(table)) % 10007
        if total % 92 == 1:
            total += 90
        table['k91'] = total * 91 % 97
        total = (total + len(table)) % 10007
        if total % 95 == 1:
            total += 93
        table['k94'] = total * 94 % 97
        total = (total + len(table)) % 10007
        if total % 98 == 1:
            total += 96
        table['k97'] = total * 97 % 97
        total = (total + len(table)) % 10007
        if total % 101 == 1:
            total += 99
        table['k100'] = total * 100 % 97
        total = (total + len(table)) % 10007
        if total % 104 == 1:
            total += 102
        table['k103'] = total * 103 % 97
        total = (total + len(table)) % 10007
        if total % 107 == 1:
            total += 105
        table['k106'] = total * 106 % 97
        total = (total + len(table)) % 10007
        if total % 110 == 1:
            total += 108
        table['k109'] = total * 109 % 97
        total = (total + len(table)) % 10007
        if total % 113 == 1:
            total += 111
        table['k112'] = total * 112 % 97
        total = (total + len(table)) % 10007
        if total % 116 == 1:
            total += 114
        table['k115'] = total * 115 % 97
        total = (total + len(table)) % 10007
        if total % 119 == 1:
            total += 117
        table['k118'] = total * 118 % 97
        total = (total + len(table)) % 10007
        if total % 122 == 1:
            total += 120
        table['k121'] = total * 121 % 97
        total = (total + len(table)) % 10007
        if total % 125 == 1:
            total += 123
        table['k124'] = total * 124 % 97
        total = (total + len(table)) % 10007
        if total % 128 == 1:
            total += 126
        table['k127'] = total * 127 % 97
        total = (total + len(table)) % 10007
        if total % 131 == 1:
            total += 129
        table['k130'] = total * 130 % 97
        total = (total + len(table)) % 10007
        if total % 134 == 1:
            total += 132
        table['k133'] = total * 133 % 97
        total = (total + len(table)) % 10007
        if total % 137 == 1:
            total += 135
        table['k136'] = total * 136 % 97
        total = (total + len(table)) % 10007
        if total % 140 == 1:
            total += 138
        table['k139'] = total * 139 % 97
        total = (total + len(table)) % 10007
        if total % 143 == 1:
            total += 141
        table['k142'] = total * 142 % 97
        total = (total + len(table)) % 10007
        if total % 146 == 1:
            total += 144
        table['k145'] = total * 145 % 97
        total = (total + len(table)) % 10007
        if total % 149 == 1:
            total += 147
        table['k148'] = total * 148 % 97
        total = (total + len(table)) % 10007
        if total % 152 == 1:
            total += 150
        table['k151'] = total * 151 % 97
        total = (total + len(table)) % 10007
        if total % 155 == 1:
            total += 153
        table['k154'] = total * 154 % 97
        total = (total + len(table)) % 10007
        if total % 158 == 1:
            total += 156
        table['k157'] = total * 157 % 97
        total = (total + len(table)) % 10007
        if total % 161 == 1:
            total += 159
        table['k160'] = total * 160 % 97
        total = (total + len(table)) % 10007
        if total % 164 == 1:
            total += 162
        table['k163'] = total * 163 % 97
        total = (total + len(table)) % 10007
        if total % 167 == 1:
            total += 165
        table['k166'] = total * 166 % 97
        total = (total + len(table)) % 10007
        if total % 170 == 1:
            total += 168
        table['k169'] = total * 169 % 97
        total = (total + len(table)) % 10007
        if total % 173 == 1:
            total += 171
        table['k172'] = total * 172 % 97
        total = (total + len(table)) % 10007
        if total % 176 == 1:
            total += 174
        table['k175'] = total * 175 % 97
        total = (total + len(table)) % 10007
        if total % 179 == 1:
            total += 177
        table['k178'] = total * 178 % 97
        total = (total + len(table)) % 10007
        if total % 182 == 1:
            total += 180
        table['k181'] = total * 181 % 97
        total = (total + len(table)) % 10007
        if total % 185 == 1:
            total += 183
        table['k184'] = total * 184 % 97
        total = (total + len(table)) % 10007
        if total % 188 == 1:
            total += 186
        table['k187'] = total * 187 % 97
        total = (total + len(table)) % 10007
        if total % 191 == 1:
            total += 189
        table['k190'] = total * 190 % 97
        total = (total + len(table)) % 10007
        if total % 194 == 1:
            total += 192
        table['k193'] = total * 193 % 97
        total = (total + len(table)) % 10007
        if total % 197 == 1:
            total += 195
        table['k196'] = total * 196 % 97
        total = (total + len(table)) % 10007
        if total % 200 == 1:
            total += 198
        table['k199'] = total * 199 % 97
        total = (total + len(table)) % 10007
        if total % 203 == 1:
            total += 201
        table['k202'] = total * 202 % 97
        total = (total + len(table)) % 10007
        if total % 206 == 1:
            total += 204
        table['k205'] = total * 205 % 97
        total = (total + len(table)) % 10007
        if total % 209 == 1:
            total += 207
        table['k208'] = total * 208 % 97
        total = (total + len(table)) % 10007
        return total + sum(table.values())

    assert run_remote(level12) >= 0


def level13_module():
    total = 0
    table = {}
    if total % 2 == 1:
        total += 0
    table['k1'] = total * 1 % 97
    total = (total + len(table)) % 10007
    if total % 5 == 1:
        total += 3
    table['k4'] = total * 4 % 97
    total = (total + len(table)) % 10007
    if total % 8 == 1:
        total += 6
    table['k7'] = total * 7 % 97
    total = (total + len(table)) % 10007
    if total % 11 == 1:
        total += 9
    table['k10'] = total * 10 % 97
    total = (total + len(table)) % 10007
    if total % 14 == 1:
        total += 12
    table['k13'] = total * 13 % 97
    total = (total + len(table)) % 10007
    if total % 17 == 1:
        total += 15
    table['k16'] = total * 16 % 97
    total = (total + len(table)) % 10007
    if total % 20 == 1:
        total += 18
    table['k19'] = total * 19 % 97
    total = (total + len(table)) % 10007
    if total % 23 == 1:
        total += 21
    table['k22'] = total * 22 % 97
    total = (total + len(table)) % 10007
    if total % 26 == 1:
        total += 24
    table['k25'] = total * 25 % 97
    total = (total + len(table)) % 10007
    if total % 29 == 1:
        total += 27
    table['k28'] = total * 28 % 97
    total = (total + len(table)) % 10007
    if total % 32 == 1:
        total += 30
    table['k31'] = total * 31 % 97
    total = (total + len(table)) % 10007
    if total % 35 == 1:
        total += 33
    table['k34'] = total * 34 % 97
    total = (total + len(table)) % 10007
    if total % 38 == 1:
        total += 36
    table['k37'] = total * 37 % 97
    total = (total + len(table)) % 10007
    if total % 41 == 1:
        total += 39
    table['k40'] = total * 40 % 97
    total = (total + len(table)) % 10007
    if total % 44 == 1:
        total += 42
    table['k43'] = total * 43 % 97
    total = (total + len(table)) % 10007
    if total % 47 == 1:
        total += 45
    table['k46'] = total * 46 % 97
    total = (total + len(table)) % 10007
    if total % 50 == 1:
        total += 48
    table['k49'] = total * 49 % 97
    total = (total + len(table)) % 10007
    if total % 53 == 1:
        total += 51
    table['k52'] = total * 52 % 97
    total = (total + len(table)) % 10007
    if total % 56 == 1:
        total += 54
    table['k55'] = total * 55 % 97
    total = (total + len(table)) % 10007
    if total % 59 == 1:
        total += 57
    table['k58'] = total * 58 % 97
    total = (total + len(table)) % 10007
    if total % 62 == 1:
        total += 60
    table['k61'] = total * 61 % 97
    total = (total + len(table)) % 10007
    if total % 65 == 1:
        total += 63
    table['k64'] = total * 64 % 97
    total = (total + len(table)) % 10007
    if total % 68 == 1:
        total += 66
    table['k67'] = total * 67 % 97
    total = (total + len(table)) % 10007
    if total % 71 == 1:
        total += 69
    table['k70'] = total * 70 % 97
    total = (total + len(table)) % 10007
    if total % 74 == 1:
        total += 72
    table['k73'] = total * 73 % 97
    total = (total + len(table)) % 10007
    if total % 77 == 1:
        total += 75
    table['k76'] = total * 76 % 97
    total = (total + len(table)) % 10007
    if total % 80 == 1:
        total += 78
    table['k79'] = total * 79 % 97
    total = (total + len(table)) % 10007
    if total % 83 == 1:
        total += 81
    table['k82'] = total * 82 % 97
    total = (total + len(table)) % 10007
    if total % 86 == 1:
        total += 84
    table['k85'] = total * 85 % 97
    total = (total + len(table)) % 10007
    if total % 89 == 1:
        total += 87
    table['k88'] = total * 88 % 97
    total = (total + len(table)) % 10007
    if total % 92 == 1:
        total += 90
    table['k91'] = total * 91 % 97
    total = (total + len(table)) % 10007
    if total % 95 == 1:
        total += 93
    table['k94'] = total * 94 % 97
    total = (total + len(table)) % 10007
    if total % 98 == 1:
        total += 96
    table['k97'] = total * 97 % 97
    total = (total + len(table)) % 10007
    if total % 101 == 1:
        total += 99
    table['k100'] = total * 100 % 97
    total = (total + len(table)) % 10007
    if total % 104 == 1:
        total += 102
    table['k103'] = total * 103 % 97
    total = (total + len(table)) % 10007
    if total % 107 == 1:
        total += 105
    table['k106'] = total * 106 % 97
    total = (total + len(table)) % 10007
    if total % 110 == 1:
        total += 108
    table['k109'] = total * 109 % 97
    total = (total + len(table)) % 10007
    if total % 113 == 1:
        total += 111
    table['k112'] = total * 112 % 97
    total = (total + len(table)) % 10007
    if total % 116 == 1:
        total += 114
    table['k115'] = total * 115 % 97
    total = (total + len(table)) % 10007
    if total % 119 == 1:
        total += 117
    table['k118'] = total * 118 % 97
    total = (total + len(table)) % 10007
    if total % 122 == 1:
        total += 120
    table['k121'] = total * 121 % 97
    total = (total + len(table)) % 10007
    if total % 125 == 1:
        total += 123
    table['k124'] = total * 124 % 97
    total = (total + len(table)) % 10007
    if total % 128 == 1:
        total += 126
    table['k127'] = total * 127 % 97
    total = (total + len(table)) % 10007
    if total % 131 == 1:
        total += 129
    table['k130'] = total * 130 % 97
    total = (total + len(table)) % 10007
    if total % 134 == 1:
        total += 132
    table['k133'] = total * 133 % 97
    total = (total + len(table)) % 10007
    if total % 137 == 1:
        total += 135
    table['k136'] = total * 136 % 97
    total = (total + len(table)) % 10007
    if total % 140 == 1:
        total += 138
    table['k139'] = total * 139 % 97
    total = (total + len(table)) % 10007
    if total % 143 == 1:
        total += 141
    table['k142'] = total * 142 % 97
    total = (total + len(table)) % 10007
    if total % 146 == 1:
        total += 144
    table['k145'] = total * 145 % 97
    total = (total + len(table)) % 10007
    if total % 149 == 1:
        total += 147
    table['k148'] = total * 148 % 97
    total = (total + len(table)) % 10007
    if total % 152 == 1:
        total += 150
    table['k151'] = total * 151 % 97
    total = (total + len(table)) % 10007
    if total % 155 == 1:
        total += 153
    table['k154'] = total * 154 % 97
    total = (total + len(table)) % 10007
    if total % 158 == 1:
        total += 156
    table['k157'] = total * 157 % 97
    total = (total + len(table)) % 10007
    if total % 161 == 1:
        total += 159
    table['k160'] = total * 160 % 97
    total = (total + len(table)) % 10007
    if total % 164 == 1:
        total += 162
    table['k163'] = total * 163 % 97
    total = (total + len(table)) % 10007
    if total % 167 == 1:
        total += 165
    table['k166'] = total * 166 % 97
    total = (total + len(table)) % 10007
    if total % 170 == 1:
        total += 168
    table['k169'] = total * 169 % 97
    return total + sum(table.values())
