"""What the demo loads: three accounts and a sample course with its scenes.

The course is in Portuguese, like the platform's first courses; the accounts cover the
three roles. Edit this file to change the demo data: the loader adds what is missing
and never touches what is there.
"""

from __future__ import annotations

from dataclasses import dataclass

from tecnocursos.auth.models import Role
from tecnocursos.projects.models import Visibility
from tecnocursos.projects.schemas import ProjectIn
from tecnocursos.scenes.schemas import SceneIn

__all__ = ["ACCOUNTS", "COURSE", "COURSE_OWNER", "SCENES", "DemoAccount"]


@dataclass(frozen=True)
class DemoAccount:
    """A demo account: its email and role (the password is the loader's argument)."""

    email: str
    role: Role


# --8<-- [start:accounts]
ACCOUNTS = (
    DemoAccount("admin@tecnocursos.example.com", Role.ADMIN),
    DemoAccount("instrutora@tecnocursos.example.com", Role.INSTRUCTOR),
    DemoAccount("aluno@tecnocursos.example.com", Role.STUDENT),
)
"""An admin, an instructor (who owns the course) and a student (who can read it)."""
# --8<-- [end:accounts]

COURSE_OWNER = ACCOUNTS[1].email
"""The instructor who owns the sample course."""

COURSE = ProjectIn(
    title="Python do zero: seu primeiro programa",
    description=(
        "Um curso curto para quem nunca programou: instalar o Python, escrever o primeiro "
        "programa e entender variáveis, decisões, repetições e funções."
    ),
    visibility=Visibility.PUBLIC,
)
"""The sample course: public, so the student account can read it too."""

SCENES = (
    SceneIn(
        title="Boas-vindas",
        script="Olá! Neste curso você vai escrever seus primeiros programas em Python.",
        duration_seconds=45,
    ),
    SceneIn(
        title="Instalando o Python",
        script="Baixe o Python em python.org e confira a versão com `python3 --version`.",
        duration_seconds=120,
    ),
    SceneIn(
        title="Olá, mundo!",
        script='Abra o editor, escreva print("Olá, mundo!") e execute o arquivo.',
        duration_seconds=90,
    ),
    SceneIn(
        title="Variáveis e tipos",
        script="Uma variável guarda um valor: nome = 'Ana', idade = 30, altura = 1.65.",
        duration_seconds=150,
    ),
    SceneIn(
        title="Decisões com if",
        script="if idade >= 18: print('maior de idade') else: print('menor de idade').",
        duration_seconds=140,
    ),
    SceneIn(
        title="Repetições com for",
        script="for numero in range(1, 6): print(numero) mostra os números de 1 a 5.",
        duration_seconds=130,
    ),
    SceneIn(
        title="Funções e próximos passos",
        script=(
            "def saudacao(nome): return f'Olá, {nome}!' e, para continuar, listas e dicionários."
        ),
        duration_seconds=160,
    ),
)
"""The course's scenes, in order (a scene is found again by its title)."""
