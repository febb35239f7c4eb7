import TinyProject.Basic
import TinyProject.Cheats
