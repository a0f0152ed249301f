import CFuse
import MetaCache
